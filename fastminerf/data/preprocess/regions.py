"""INSTA region ids for the ICT-FaceKit vertices (kept parts, head space in metres).

Rules on the neutral template, from the part a vertex belongs to and the 68 landmarks
seen from the front (x–y plane): lips / eyes / nose by polygons through the landmarks,
brows by distance to the brow polylines, ears / neck / scalp by position. The template is
the same for every identity, so this runs once when the model is cached.
"""
from __future__ import annotations

import numpy as np

from ..regions import Region

SKIN, BROW, EYE, EAR, NOSE, MOUTH, UPPER_LIP, LOWER_LIP, NECK, HAIR = (
    Region.SKIN, Region.BROW, Region.EYE, Region.EAR, Region.NOSE, Region.MOUTH_INTERIOR, Region.UPPER_LIP,
    Region.LOWER_LIP, Region.NECK, Region.HAIR)


def points_in_polygon(p: np.ndarray, poly: np.ndarray) -> np.ndarray:
    """Even-odd test. p: [N, 2], poly: [M, 2] (closed implicitly) → [N] bool."""
    a = poly
    b = np.roll(poly, -1, axis=0)
    px, py = p[:, None, 0], p[:, None, 1]  # [N, 1]
    crosses = (a[None, :, 1] > py) != (b[None, :, 1] > py)  # [N, M]
    dy = np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1])
    x_at = a[None, :, 0] + (py - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / dy[None]
    return (crosses & (px < x_at)).sum(1) % 2 == 1


def _grow(poly: np.ndarray, factor: float) -> np.ndarray:
    c = poly.mean(0)
    return c + (poly - c) * factor


def _dist_to_polyline(p: np.ndarray, line: np.ndarray) -> np.ndarray:
    """[N] distance from points [N, 2] to a polyline [M, 2]."""
    a, b = line[:-1], line[1:]  # [S, 2]
    ab = b - a
    t = np.clip(((p[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1)[None], 0, 1)  # [N, S]
    q = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(p[:, None] - q, axis=-1).min(1)


def ict_regions(vertices: np.ndarray, landmarks68: np.ndarray, part: np.ndarray) -> np.ndarray:
    """Region id per kept vertex.

    Args:
        vertices: [V, 3] kept ICT template (metres), order of ``face_model_ict.KEPT_RANGES``.
        landmarks68: [68] kept-vertex indices of the Multi-PIE landmarks.
        part: [V] name of the ICT part each vertex comes from (``face_model_ict.part_of_vertex``).
    Returns:
        [V] uint8 INSTA region ids.
    """
    v = vertices * 100.0  # rules below are in cm
    x, y, z = v[:, 0], v[:, 1], v[:, 2]
    L = v[landmarks68, :2]
    xy = v[:, :2]
    reg = np.full(len(v), SKIN, np.uint8)
    face = part == "face"
    front = face & (z > 5.0)

    neck = (y < -8.0) | ((y < -5.0) & (z < 3.0))
    reg[neck & ~face | (neck & face & (z < 8.0))] = NECK
    ear = (np.abs(x) > 7.6) & (y > -2.5) & (y < 5.0) & (z < 3.5)
    reg[ear] = EAR
    scalp = (part == "head_neck") & ~neck & ~ear & ((y > 3.0) | (z < -2.0))
    reg[scalp] = HAIR

    brow = front & ((_dist_to_polyline(xy, L[17:22]) < 0.55) | (_dist_to_polyline(xy, L[22:27]) < 0.55))
    reg[brow] = BROW
    nose_poly = np.concatenate([[L[27] + [-1.0, 0.0]], L[31:36] + [[-0.5, 0], [0, -0.2], [0, -0.2], [0, -0.2], [0.5, 0]], [L[27] + [1.0, 0.0]]])
    reg[front & points_in_polygon(xy, nose_poly)] = NOSE
    for eye in (L[36:42], L[42:48]):
        reg[front & points_in_polygon(xy, _grow(eye, 1.15))] = EYE
    outer = _grow(L[48:60], 1.04)
    upper = np.concatenate([outer[0:7], L[64:59:-1]])  # 48..54 then inner 64..60
    lower = np.concatenate([outer[6:12], outer[0:1], L[60:65][:0], L[[60, 67, 66, 65, 64]]])
    lip_zone = front & (z > 8.0)
    reg[lip_zone & points_in_polygon(xy, upper)] = UPPER_LIP
    reg[lip_zone & points_in_polygon(xy, lower)] = LOWER_LIP
    # lip vertices rolling into the mouth sit between the inner contours: split by height
    inner = lip_zone & points_in_polygon(xy, outer) & ~np.isin(reg, (UPPER_LIP, LOWER_LIP))
    mid_y = 0.5 * (L[62, 1] + L[66, 1])
    reg[inner & (y >= mid_y)] = UPPER_LIP
    reg[inner & (y < mid_y)] = LOWER_LIP

    reg[part == "mouth_socket"] = MOUTH
    reg[part == "eyeballs"] = EYE
    return reg
