"""Ray marching through an occupancy grid, producing packed samples.

The grid is a boolean [R, R, R] bitfield over an axis-aligned box in head space (where the
rays and tracked meshes live). Rays are clipped to the box and sampled at a fixed step
``dt`` (sample centres t_near + (k + ½)·dt); samples in empty cells are dropped. The torch
twin builds a dense [rays, max_steps] candidate table and keeps the occupied ones, which
is vectorised and exact; the CUDA path walks the grid per ray.

Cell (i, j, k) covers aabb_min + (i, j, k)·cell_size; flat index i·R² + j·R + k.
"""
from __future__ import annotations

import torch

from ._backend import cuda_ops


def ray_aabb(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor):
    """Entry/exit distances of rays [N, 3] with a box aabb [6] (min xyz, max xyz) → t_near,
    t_far [N] (t_far < t_near when the ray misses; t_near ≥ 0)."""
    inv = 1.0 / torch.where(dirs.abs() > 1e-12, dirs, torch.full_like(dirs, 1e-12))
    t0 = (aabb[:3] - origins) * inv
    t1 = (aabb[3:] - origins) * inv
    t_near = torch.minimum(t0, t1).amax(-1).clamp_min(0)
    t_far = torch.maximum(t0, t1).amin(-1)
    return t_near, t_far


def grid_lookup(points: torch.Tensor, grid: torch.Tensor, aabb: torch.Tensor) -> torch.Tensor:
    """Occupancy of points [N, 3] in grid [R, R, R] (bool) over aabb [6] → [N] bool
    (False outside the box)."""
    R = grid.shape[0]
    rel = (points - aabb[:3]) / (aabb[3:] - aabb[:3])
    inside = ((rel >= 0) & (rel < 1)).all(-1)
    ijk = (rel * R).long().clamp_(0, R - 1)
    flat = (ijk[:, 0] * R + ijk[:, 1]) * R + ijk[:, 2]
    return grid.reshape(-1)[flat] & inside


def march_rays_torch(origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, grid: torch.Tensor, dt: float,
                     max_steps: int | None = None, chunk: int = 8192):
    """Packed samples of rays through occupied cells.

    Args:
        origins, dirs: [N, 3] rays (dirs unit length). aabb: [6]. grid: [R, R, R] bool.
        dt: step length. max_steps: cap on samples per ray (default: box diagonal / dt).
    Returns:
        ray_indices [S] int64 (sorted), t_starts [S], t_ends [S].
    """
    diag = float((aabb[3:] - aabb[:3]).norm())
    n_steps = max_steps or int(diag / dt) + 1
    t_near, t_far = ray_aabb(origins, dirs, aabb)
    ks = (torch.arange(n_steps, device=origins.device, dtype=origins.dtype) + 0.5) * dt
    out_r, out_t = [], []
    for s in range(0, origins.shape[0], chunk):
        tn, tf = t_near[s : s + chunk], t_far[s : s + chunk]
        t = tn[:, None] + ks[None]  # [n, steps] sample centres
        valid = t < tf[:, None]
        pts = origins[s : s + chunk, None] + dirs[s : s + chunk, None] * t[..., None]
        occ = grid_lookup(pts.reshape(-1, 3), grid, aabb).reshape(t.shape) & valid
        r, k = occ.nonzero(as_tuple=True)
        out_r.append(r + s)
        out_t.append(t[r, k])
    ray_indices = torch.cat(out_r)
    t_mid = torch.cat(out_t)
    return ray_indices, t_mid - 0.5 * dt, t_mid + 0.5 * dt


def march_rays(origins, dirs, aabb, grid, dt, max_steps=None, backend: str = "torch"):
    """Dispatching marcher (see :func:`march_rays_torch`)."""
    if backend == "cuda" and origins.is_cuda:
        return cuda_ops().march_rays(origins, dirs, aabb, grid, dt, max_steps)
    return march_rays_torch(origins, dirs, aabb, grid, dt, max_steps)
