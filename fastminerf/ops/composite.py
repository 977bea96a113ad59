"""Volume compositing on packed samples.

Samples of all rays are stored flat and sorted by ray: ``ray_indices[S]`` says which ray a
sample belongs to, ``t_starts/t_ends[S]`` its interval. For each ray

    T_j = exp(−Σ_{i<j} σ_i δ_i),   α_j = 1 − exp(−σ_j δ_j),   w_j = T_j α_j,
    C = Σ w_j c_j + (1 − Σ w_j) · background.

The torch twin forms the per-ray exclusive sums from one global cumulative sum in float64
(minus each ray's value at its first sample), which stays exact for long batches. Each
optical depth σ_j δ_j is capped at :data:`TAU_MAX` first: one huge (or infinite) σ would
otherwise swamp the float64 running sum and corrupt the transmittance of every *later ray*
in the batch (seen: a diverging density spike gave weights > 1 batch-wide, then NaN). The
cap changes nothing visible: exp(−TAU_MAX) ≈ 1e-22.
"""
from __future__ import annotations

import torch

from ._backend import cuda_ops

#: largest optical depth of one sample (α = 1 − e^−50 is 1 in float32)
TAU_MAX = 50.0


def render_weights_torch(sigmas: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor, ray_indices: torch.Tensor, n_rays: int):
    """Weights of packed samples: sigmas, t_starts, t_ends, ray_indices [S] → weights [S],
    transmittance [S] (before each sample), alphas [S]."""
    tau = (sigmas * (t_ends - t_starts)).clamp(max=TAU_MAX)
    incl = torch.cumsum(tau.double(), 0)
    excl = incl - tau.double()
    if tau.shape[0] == 0:
        z = tau.new_zeros(0)
        return z, z, z
    first = torch.ones_like(ray_indices, dtype=torch.bool)
    first[1:] = ray_indices[1:] != ray_indices[:-1]
    start = torch.cummax(torch.where(first, torch.arange(len(first), device=first.device), 0), 0).values
    trans = torch.exp(-(excl - excl[start])).to(sigmas.dtype)
    alphas = 1 - torch.exp(-tau)
    return trans * alphas, trans, alphas


def composite_torch(sigmas: torch.Tensor, rgbs: torch.Tensor, t_starts: torch.Tensor, t_ends: torch.Tensor,
                    ray_indices: torch.Tensor, n_rays: int, background: torch.Tensor | None = None):
    """Composite packed samples into pixels.

    Args:
        sigmas [S], rgbs [S, 3], t_starts [S], t_ends [S], ray_indices [S] (sorted);
        n_rays R; background [R, 3] or [3] or None (black).
    Returns:
        dict with rgb [R, 3], opacity [R], depth [R] (expected t), weights [S].
    """
    w, _, _ = render_weights_torch(sigmas, t_starts, t_ends, ray_indices, n_rays)
    rgb = torch.zeros(n_rays, 3, dtype=rgbs.dtype, device=rgbs.device).index_add_(0, ray_indices, w[:, None] * rgbs)
    opacity = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray_indices, w)
    depth = torch.zeros(n_rays, dtype=w.dtype, device=w.device).index_add_(0, ray_indices, w * 0.5 * (t_starts + t_ends))
    if background is not None:
        rgb = rgb + (1 - opacity)[:, None] * background
    return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": w}


def composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, background=None, backend: str = "torch"):
    """Dispatching compositor (see :func:`composite_torch` for shapes)."""
    if backend == "cuda" and sigmas.is_cuda:
        return cuda_ops().composite(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, background)
    return composite_torch(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, background)
