"""Temporal smoothing of a driving sequence at render time (reduces frame-to-frame jitter).

MI-NeRF smooths the conditioning over time with a learned self-attention; here a Gaussian
filter over time does that job without training. It is applied to everything that drives a
frame: expression coefficients, latent codes and the driving meshes (in this field the
mesh carries the expression's geometry, so smoothing only the codes would leave the
geometric jitter). Cameras are not smoothed. Sequence ends repeat the first / last frame.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..model.frames import FrameBatch


def kernel_radius(sigma: float) -> int:
    """Frames on each side that a Gaussian of ``sigma`` frames reaches (3σ, 0 when off)."""
    return int(math.ceil(3 * sigma)) if sigma > 0 else 0


def smooth_sequence(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian filter along dim 0 of x [K, ...] with std ``sigma`` frames (float; same shape).

    Position t becomes Σ_j w_j x_{t+j}, w ∝ exp(−j²/2σ²), |j| ≤ 3σ; indices outside the
    sequence take the nearest end frame. sigma ≤ 0 returns x unchanged.
    """
    r = kernel_radius(sigma)
    if r == 0 or x.shape[0] < 2:
        return x
    j = torch.arange(-r, r + 1, dtype=torch.float32, device=x.device)
    w = torch.exp(-0.5 * (j / sigma) ** 2)
    w = (w / w.sum()).to(x.dtype)
    K = x.shape[0]
    cols = x.reshape(K, -1).T[:, None, :]  # [C, 1, K]
    idx = torch.arange(-r, K + r, device=x.device).clamp(0, K - 1)  # replicate the ends
    out = F.conv1d(cols[..., idx], w.flip(0)[None, None])  # [C, 1, K]
    return out[:, 0].T.reshape(x.shape)


def smooth_frames(frames: FrameBatch, sigma: float) -> FrameBatch:
    """A FrameBatch with expressions [K, E], latent codes [K, L] and meshes [K, V, 3]
    smoothed over its K frames (consecutive in time). Identities are kept; mesh cache keys
    are dropped (smoothed meshes are new meshes)."""
    if kernel_radius(sigma) == 0:
        return frames
    with torch.no_grad():
        return FrameBatch(vertices=smooth_sequence(frames.vertices, sigma),
                          expression=smooth_sequence(frames.expression, sigma),
                          identity=frames.identity, latent=smooth_sequence(frames.latent, sigma), keys=None)
