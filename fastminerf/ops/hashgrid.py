"""Multiresolution hash-grid encoding with tiny-cuda-nn's exact indexing.

Level ``l`` (0-based) of a grid with ``base_resolution`` b and ``per_level_scale`` s:

    scale_l      = exp2(l · log2(s)) · b − 1              (float32, as tcnn)
    resolution_l = ceil(scale_l) + 1
    size_l       = min(next_multiple(resolution_l³, 8), 2^log2_hashmap_size)
    pos          = fma(scale_l, x, 0.5)   x ∈ [0, 1]³;  cell = floor(pos), frac = pos − cell
    index        = x + y·res + z·res²                      if res³ ≤ size_l   (dense level)
                 = (x·1) ^ (y·2654435761) ^ (z·805459861)  otherwise         (hashed, uint32)
    row          = offset_l + index mod size_l

Parameters are one table [P, F] (P = Σ size_l, F features per level), row-major, which is
tcnn's flat parameter layout — checkpoints move between the torch, cuda and tcnn backends.
Output features are level-major: out[:, l·F + f]. Trilinear interpolation over 8 corners.

Public API: :class:`HashGridSpec`, :func:`hash_grid_encode` (dispatching), the torch twin
:func:`hash_grid_encode_torch`, and :func:`grid_indices` (for tests and kernels).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from ._backend import cuda_ops

PRIMES = (1, 2654435761, 805459861)
_MASK32 = 0xFFFFFFFF
PRECISIONS = ("fp32", "fp16")


@dataclass(frozen=True)
class HashGridSpec:
    """Geometry of a hash grid (tcnn's "HashGrid" encoding config).

    Attributes:
        n_levels: L. n_features: F per level. log2_hashmap_size: T (table ≤ 2^T rows per level).
        base_resolution: b. per_level_scale: s (growth factor between levels).
    """

    n_levels: int = 16
    n_features: int = 2
    log2_hashmap_size: int = 19
    base_resolution: int = 16
    per_level_scale: float = 1.447269237440378

    @staticmethod
    def from_finest(n_levels: int, n_features: int, log2_hashmap_size: int, base_resolution: int, finest_resolution: int) -> HashGridSpec:
        """Spec whose last level has ≈ ``finest_resolution`` cells per axis (Instant-NGP's rule)."""
        s = math.exp(math.log(finest_resolution / base_resolution) / max(n_levels - 1, 1))
        return HashGridSpec(n_levels, n_features, log2_hashmap_size, base_resolution, s)

    @cached_property
    def layout(self) -> dict[str, np.ndarray]:
        """Per-level ``scale`` (float32), ``resolution``, ``size``, ``offset`` (L+1), ``hashed``."""
        log2s = np.float32(math.log2(np.float32(self.per_level_scale)))
        scales, res, sizes = [], [], []
        for lvl in range(self.n_levels):
            sc = np.float32(np.exp2(np.float32(lvl) * log2s) * np.float32(self.base_resolution) - np.float32(1.0))
            r = int(math.ceil(sc)) + 1
            dense = min(r**3, 2**31 - 1)
            dense = (dense + 7) // 8 * 8
            scales.append(sc)
            res.append(r)
            sizes.append(min(dense, 2**self.log2_hashmap_size))
        sizes_a = np.array(sizes, np.int64)
        res_a = np.array(res, np.int64)
        return {
            "scale": np.array(scales, np.float32),
            "resolution": res_a,
            "size": sizes_a,
            "offset": np.concatenate([[0], np.cumsum(sizes_a)]).astype(np.int64),
            "hashed": res_a**3 > sizes_a,
        }

    @property
    def n_params(self) -> int:
        """Rows of the table, P."""
        return int(self.layout["offset"][-1])

    @property
    def out_dim(self) -> int:
        return self.n_levels * self.n_features


def _level_tensors(spec: HashGridSpec, device) -> dict[str, torch.Tensor]:
    lay = spec.layout
    return {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in lay.items()}


def _pair(c: torch.Tensor) -> torch.Tensor:
    """[..., ] cell coordinate → [..., 2] (cell, cell + 1)."""
    return torch.stack([c, c + 1], -1)


def _corners(tx: torch.Tensor, ty: torch.Tensor, tz: torch.Tensor, op) -> torch.Tensor:
    """Combine per-axis terms [N, l, 2] into the 8 corners [N, l, 8]; corner c = bx + 2·by + 4·bz."""
    return op(op(tx[..., None, None, :], ty[..., None, :, None]), tz[..., :, None, None]).reshape(*tx.shape[:-1], 8)


def grid_indices(x: torch.Tensor, spec: HashGridSpec):
    """Table rows and trilinear fractions of the 8 corners at every level.

    Args:
        x: [N, 3] float32 positions in [0, 1]³.
    Returns:
        rows [N, L, 8] int64 (absolute rows of the table), frac [N, L, 3] float32,
        corner bits [8, 3] int64 (corner c = bx + 2·by + 4·bz uses cell + (bx, by, bz)).
    """
    lv = _level_tensors(spec, x.device)
    N, L = x.shape[0], spec.n_levels
    # fma(scale, x, 0.5) rounded once to float32: exact in float64, then one rounding
    pos = (x.detach().double()[:, None, :] * lv["scale"].double()[None, :, None] + 0.5).float()
    cell = torch.floor(pos)
    frac = pos - cell
    c = cell.long()
    rows = torch.empty(N, L, 8, dtype=torch.long, device=x.device)
    dense = (~lv["hashed"]).nonzero().reshape(-1)
    hashed = lv["hashed"].nonzero().reshape(-1)
    if len(dense):  # x + y·res + z·res², then mod size (one subtraction suffices: idx < 2·size)
        cd, res, size = c[:, dense], lv["resolution"][dense], lv["size"][dense][None, :, None]
        idx = _corners(_pair(cd[..., 0]), _pair(cd[..., 1]) * res[:, None], _pair(cd[..., 2]) * (res * res)[:, None], torch.add)
        idx = torch.where(idx >= size, idx - size, idx)
        rows[:, dense] = idx + lv["offset"][dense][None, :, None]
    if len(hashed):  # (x·1) ^ (y·2654435761) ^ (z·805459861) in uint32; sizes are powers of two
        ch = c[:, hashed]
        terms = [(_pair(ch[..., d]) * PRIMES[d]) & _MASK32 for d in range(3)]
        idx = _corners(*terms, torch.bitwise_xor)
        size = lv["size"][hashed]
        pow2 = bool(((size & (size - 1)) == 0).all())
        idx = idx & (size - 1)[None, :, None] if pow2 else idx % size[None, :, None]
        rows[:, hashed] = idx + lv["offset"][hashed][None, :, None]
    bits = torch.tensor([[(k >> d) & 1 for d in range(3)] for k in range(8)], device=x.device)
    return rows, frac, bits


def _corner_weights(frac: torch.Tensor) -> torch.Tensor:
    """[N, L, 8] trilinear weights from frac [N, L, 3] (corner order of :func:`grid_indices`)."""
    w = torch.stack([1 - frac, frac], -1)  # [N, L, 3, 2]
    return _corners(w[:, :, 0], w[:, :, 1], w[:, :, 2], torch.mul)


class _HashGridTorch(torch.autograd.Function):
    """Fused gather-and-blend (embedding_bag) forward; scatter-add (index_add_) backward,
    which is several times faster on the CPU than autograd's index backward."""

    @staticmethod
    def forward(ctx, x, table, spec):
        rows, frac, bits = grid_indices(x, spec)
        w = _corner_weights(frac)
        N, L, F = x.shape[0], spec.n_levels, spec.n_features
        out = torch.nn.functional.embedding_bag(rows.reshape(-1, 8), table, per_sample_weights=w.reshape(-1, 8).to(table.dtype), mode="sum")
        ctx.save_for_backward(rows, frac, bits, w, table if ctx.needs_input_grad[0] else None)
        ctx.spec, ctx.n_rows = spec, table.shape[0]
        return out.reshape(N, L * F)

    @staticmethod
    def backward(ctx, grad_out):
        rows, frac, bits, w, table = ctx.saved_tensors
        spec = ctx.spec
        N, L, F = rows.shape[0], spec.n_levels, spec.n_features
        go = grad_out.reshape(N, L, F)
        g_x = g_table = None
        if ctx.needs_input_grad[1]:
            g_table = torch.zeros(ctx.n_rows, F, dtype=grad_out.dtype, device=grad_out.device)
            g_table.index_add_(0, rows.reshape(-1), (w[..., None] * go[:, :, None, :]).reshape(-1, F))
        if ctx.needs_input_grad[0]:
            # d w_c / d frac_d = ±Π_{e≠d} (frac_e or 1−frac_e); d frac / d x = scale
            f = frac[:, :, None, :]
            b = bits[None, None].bool()
            factors = torch.where(b, f, 1 - f)  # [N, L, 8, 3]
            sign = torch.where(b, 1.0, -1.0)
            dw = torch.stack([sign[..., d] * factors[..., [e for e in range(3) if e != d]].prod(-1) for d in range(3)], -1)
            dot = (table[rows].to(go.dtype) * go[:, :, None, :]).sum(-1)  # [N, L, 8]
            scale = torch.from_numpy(spec.layout["scale"]).to(frac.device)
            g_x = ((dot[..., None] * dw).sum(2) * scale[None, :, None]).sum(1)
        return g_x, g_table, None


def hash_grid_encode_torch(x: torch.Tensor, table: torch.Tensor, spec: HashGridSpec) -> torch.Tensor:
    """Torch twin. x [N, 3] in [0, 1]³, table [P, F] → features [N, L·F] (level-major)."""
    assert x.ndim == 2 and x.shape[1] == 3, f"x must be [N, 3], got {tuple(x.shape)}"
    assert table.shape == (spec.n_params, spec.n_features), f"table must be [{spec.n_params}, {spec.n_features}], got {tuple(table.shape)}"
    return _HashGridTorch.apply(x.contiguous(), table, spec)


def hash_grid_encode(x: torch.Tensor, table: torch.Tensor, spec: HashGridSpec, backend: str = "torch",
                     precision: str = "fp32") -> torch.Tensor:
    """Encode positions. x [N, 3] in [0, 1]³ (float32), table [P, F] → [N, L·F] float32.

    ``backend`` is "torch" (reference, any device) or "cuda" (csrc kernel on CUDA tensors).
    ``precision`` "fp16" reads the table rounded to float16 (the float32 table stays the
    parameter and receives float32 gradients); "fp32" reads it as is.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"hash-grid precision must be one of {PRECISIONS}, got {precision!r}")
    if backend == "cuda" and x.is_cuda:
        return cuda_ops().hash_grid_encode(x, table, spec, half=precision == "fp16")
    if precision == "fp16":  # same rounding, straight-through float32 gradient
        table = table + (table.detach().half().float() - table.detach())
    return hash_grid_encode_torch(x, table, spec)
