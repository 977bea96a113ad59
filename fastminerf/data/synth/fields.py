"""Small numeric helpers: Gaussian bumps, smooth steps, value noise, mesh vertex normals.

Shared by the blendshapes (where a displacement applies), the appearance (where a colour
applies) and the motion. ``value_noise`` of the same points and seed gives the same float64
numbers on every machine: the lattice values come from a 32-bit integer hash, and
interpolation uses only + − ×.
"""
from __future__ import annotations

import numpy as np

_M1, _M2, _M3 = np.uint32(0x9E3779B1), np.uint32(0x85EBCA77), np.uint32(0xC2B2AE3D)


def hash3(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Uniform [0, 1) values for integer lattice points (any int arrays of one shape)."""
    with np.errstate(over="ignore"):
        h = (ix.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32) * _M1
        h ^= (iy.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32) * _M2
        h ^= (iz.astype(np.int64) & 0xFFFFFFFF).astype(np.uint32) * _M3
        h ^= np.uint32(seed & 0xFFFFFFFF) * np.uint32(0x27D4EB2F)
        h ^= h >> np.uint32(15)
        h *= np.uint32(0x2C1B3C6D)
        h ^= h >> np.uint32(12)
        h *= np.uint32(0x297A2D39)
        h ^= h >> np.uint32(15)
    return h.astype(np.float64) / 4294967296.0


def value_noise(p: np.ndarray, cell: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1] at points p [N, 3] (metres) with lattice spacing ``cell``. → [N]."""
    q = np.asarray(p, np.float64) / cell
    i = np.floor(q)
    f = q - i
    f = f * f * (3.0 - 2.0 * f)
    i = i.astype(np.int64)
    out = np.zeros(q.shape[0])
    for dx in (0, 1):
        wx = f[:, 0] if dx else 1.0 - f[:, 0]
        for dy in (0, 1):
            wy = f[:, 1] if dy else 1.0 - f[:, 1]
            for dz in (0, 1):
                wz = f[:, 2] if dz else 1.0 - f[:, 2]
                out += wx * wy * wz * hash3(i[:, 0] + dx, i[:, 1] + dy, i[:, 2] + dz, seed)
    return out


def bump(p: np.ndarray, c, r) -> np.ndarray:
    """Anisotropic Gaussian exp(−½|(p − c)/r|²) at points p [N, 3]; r scalar or [3]. → [N]."""
    q = (p - np.asarray(c)) / np.asarray(r)
    return np.exp(-0.5 * np.einsum("ni,ni->n", q, q))


def smoothstep(a: float, b: float, x: np.ndarray) -> np.ndarray:
    """0 at a, 1 at b, smooth (cubic) in between; a > b gives a falling step."""
    t = np.clip((x - a) / (b - a), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def soft_edge(x: np.ndarray, width: float) -> np.ndarray:
    """Linear ramp 0 → 1 over ``width`` centred on x = 0 (anti-aliased pattern edges)."""
    return np.clip(0.5 + x / width, 0.0, 1.0)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals. vertices [V, 3], faces [T, 3] → [V, 3] float64."""
    v = np.asarray(vertices, np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])  # [T, 3], |fn| = 2·area
    n = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], fn[:, c], minlength=v.shape[0])
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
