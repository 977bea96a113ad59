"""Occupancy grid in head space: which cells the marcher may sample.

A density grid [R³] (EMA of the field's σ at random points in each cell) and its bitfield
[R, R, R]. It is a union over frames: each refresh evaluates points of random cells through
the meshes of random training frames (INSTA). Only *candidate* cells are ever refreshed:
with the far-from-mesh cut-off, cells farther than the cut-off from every training mesh can
never hold density, so they are excluded once at start (the "mesh band").
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class OccupancyGrid(nn.Module):
    """Args:
        resolution: R cells per axis. aabb: [6] head-space box (min xyz, max xyz).
    Buffers: ``density`` [R³], ``bitfield`` [R, R, R] bool, ``candidate_mask`` [R³] bool.
    """

    def __init__(self, resolution: int, aabb: torch.Tensor):
        super().__init__()
        R = int(resolution)
        self.R = R
        self.register_buffer("aabb", aabb.float().clone())
        self.register_buffer("density", torch.zeros(R**3))
        self.register_buffer("bitfield", torch.ones(R, R, R, dtype=torch.bool))
        self.register_buffer("candidate_mask", torch.ones(R**3, dtype=torch.bool))

    @property
    def candidates(self) -> torch.Tensor:
        """[C] int64 flat indices of the cells that may hold density."""
        return self.candidate_mask.nonzero().reshape(-1)

    @property
    def cell_size(self) -> torch.Tensor:
        return (self.aabb[3:] - self.aabb[:3]) / self.R

    def cells_of(self, points: torch.Tensor) -> torch.Tensor:
        """Flat cell index of points [N, 3] (clamped into the grid)."""
        ijk = ((points - self.aabb[:3]) / self.cell_size).long().clamp_(0, self.R - 1)
        return (ijk[:, 0] * self.R + ijk[:, 1]) * self.R + ijk[:, 2]

    def _dilate(self, mask: torch.Tensor, cells: int) -> torch.Tensor:
        if cells <= 0:
            return mask
        m = mask.reshape(1, 1, self.R, self.R, self.R).float()
        return F.max_pool3d(m, 2 * cells + 1, stride=1, padding=cells).reshape(-1) > 0

    def _cells(self, distance: float) -> int:
        return int(math.ceil(distance / float(self.cell_size.min())))

    @torch.no_grad()
    def init_from_meshes(self, vertices: torch.Tensor, band: float | None, init_band: float, init_density: float) -> None:
        """Seed the grid from training meshes.

        Args:
            vertices: [N, 3] head-space vertices of (a subset of) the training frames.
            band: far-from-mesh cut-off distance; cells beyond it are never candidates
                (None = every cell is a candidate).
            init_band: cells within this distance of a mesh vertex start occupied (the
                field then grows or prunes occupancy through the updates).
            init_density: their initial density (just above the threshold).
        """
        hit = torch.zeros(self.R**3, dtype=torch.bool, device=self.density.device)
        hit[self.cells_of(vertices.to(self.density.device))] = True
        if band is not None:
            self.candidate_mask = self._dilate(hit, self._cells(band) + 1)
        start = self._dilate(hit, max(1, self._cells(init_band))) & self.candidate_mask
        self.density.zero_()
        self.density[start] = init_density
        self.bitfield = start.reshape(self.R, self.R, self.R)

    @torch.no_grad()
    def update(self, density_fn, n_points: int, decay: float, threshold: float, generator: torch.Generator) -> None:
        """Refresh ``n_points`` random candidate cells.

        density_fn: points [n, 3] (head space) → σ [n]. Refreshed cells take
        max(old · decay, σ) (the others keep their value, as in Instant-NGP); the bitfield is
        density > min(mean candidate density, threshold), threshold in σ units (1/length).
        """
        dev = self.density.device
        cand = self.candidates
        C = cand.shape[0]
        pick = cand[torch.randint(C, (min(n_points, C),), generator=generator).to(dev)]
        R = self.R
        ijk = torch.stack([pick // (R * R), (pick // R) % R, pick % R], -1).float()
        jitter = torch.rand(ijk.shape, generator=generator).to(dev)
        pts = self.aabb[:3] + (ijk + jitter) * self.cell_size
        sigma = density_fn(pts)
        new = torch.maximum(self.density[pick] * decay, sigma.float())
        self.density[pick] = new
        thr = min(float(self.density[cand].mean()), threshold)
        self.bitfield = (self.density > thr).reshape(R, R, R)

    @staticmethod
    def due(step: int, every: int) -> bool:
        """Whether a refresh is due after ``step`` (INSTA's schedule): every
        min(step // 16, ``every``) steps, so every step at first, while the field changes fast."""
        return step % max(1, min(step // 16, every)) == 0

    def occupied_fraction(self) -> float:
        return float(self.bitfield.float().mean())
