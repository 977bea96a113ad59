"""Portable, deterministic value noise (integer hashing, no platform-dependent maths).

Used for skin and hair micro-texture and irregular shapes. ``value_noise`` of the same points
and seed gives the same float64 numbers on every machine: the lattice values come from a
32-bit integer hash, and interpolation uses only + − ×.
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
