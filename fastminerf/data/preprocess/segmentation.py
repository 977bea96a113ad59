"""Per-frame face-parsing masks with INSTA's region ids, from the landmarks and the matte.

INSTA weights the photometric loss on lips and mouth pixels from ``seg_mask/``; these masks
give the trainer the same classes without a face-parsing network. Regions are polygons
through MediaPipe's landmark contours (the connection sets shipped with MediaPipe): face
oval → skin (250), nose (150), brows (240), eyes (210), outer lip contour split into upper
(130) / lower (120) lip by the line through the mouth corners, inner lip contour → mouth
interior (140); inside the matte but outside the face oval: neck (110) below the jaw
(0.2 face heights above the chin), hair (80) elsewhere (ears and hair share it); background 0 outside the matte.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .regions import BROW, EYE, HAIR, LOWER_LIP, MOUTH, NECK, NOSE, SKIN, UPPER_LIP
from .tracking import import_cv2, import_mediapipe


def cycles(edges) -> list[np.ndarray]:
    """Closed contours of an edge set whose vertices all have degree 2 → list of [N] ids."""
    nbr: dict[int, list[int]] = {}
    for a, b in edges:
        nbr.setdefault(a, []).append(b)
        nbr.setdefault(b, []).append(a)
    seen: set[int] = set()
    out = []
    for start in sorted(nbr):
        if start in seen:
            continue
        loop, prev, cur = [start], None, start
        seen.add(start)
        while True:
            nxt = [n for n in nbr[cur] if n != prev]
            cur, prev = nxt[0], cur
            if cur == start:
                break
            loop.append(cur)
            seen.add(cur)
        out.append(np.array(loop))
    return out


@dataclass
class FaceParts:
    """Landmark id sets/contours: oval, lips_outer, lips_inner, eyes (2), brows (2), nose."""

    oval: np.ndarray
    lips_outer: np.ndarray
    lips_inner: np.ndarray
    eyes: list[np.ndarray]
    brows: list[np.ndarray]
    nose: np.ndarray

    @classmethod
    def from_mediapipe(cls) -> FaceParts:
        c = import_mediapipe().solutions.face_mesh_connections
        lips = cycles(c.FACEMESH_LIPS)
        outer = next(l for l in lips if 0 in l)  # 0: top of the upper lip (outer contour)
        inner = next(l for l in lips if 0 not in l)
        ids = lambda e: np.array(sorted({i for ab in e for i in ab}))
        return cls(oval=cycles(c.FACEMESH_FACE_OVAL)[0], lips_outer=outer, lips_inner=inner,
                   eyes=[cycles(c.FACEMESH_LEFT_EYE)[0], cycles(c.FACEMESH_RIGHT_EYE)[0]],
                   brows=[ids(c.FACEMESH_LEFT_EYEBROW), ids(c.FACEMESH_RIGHT_EYEBROW)], nose=ids(c.FACEMESH_NOSE))


def seg_mask(alpha: np.ndarray, landmarks: np.ndarray, parts: FaceParts) -> np.ndarray:
    """alpha [H, W] uint8, landmarks [478, 2] (same pixels) → [H, W] uint8 INSTA region ids."""
    cv2 = import_cv2()

    H, W = alpha.shape
    lm = landmarks[:, :2].astype(np.float32)
    fix = lambda ids: np.round(lm[ids] * 4).astype(np.int32)  # 2 sub-pixel bits (shift=2)
    hull = lambda ids: cv2.convexHull(fix(ids))

    up = lm[10] - lm[152]
    fh = np.linalg.norm(up) + 1e-6
    up /= fh
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    height = ((xx + 0.5 - lm[152, 0]) * up[0] + (yy + 0.5 - lm[152, 1]) * up[1]) / fh  # face heights above the chin
    seg = np.where(height < 0.2, NECK, HAIR).astype(np.uint8)  # outside the face oval, below the jaw: neck
    cv2.fillPoly(seg, [fix(parts.oval)], SKIN, shift=2)
    cv2.fillConvexPoly(seg, hull(parts.nose), NOSE, shift=2)
    for b in parts.brows:
        cv2.fillConvexPoly(seg, hull(b), BROW, shift=2)
    for e in parts.eyes:
        cv2.fillPoly(seg, [fix(e)], EYE, shift=2)
    lips = np.zeros((H, W), np.uint8)
    cv2.fillPoly(lips, [fix(parts.lips_outer)], 1, shift=2)
    a, b = lm[61], lm[291]  # mouth corners
    n = np.array([-(b - a)[1], (b - a)[0]], np.float32)
    n *= np.sign(n @ up) / (np.linalg.norm(n) + 1e-6)  # normal of the corner line, pointing up the face
    upper = ((xx + 0.5 - a[0]) * n[0] + (yy + 0.5 - a[1]) * n[1]) > 0
    seg[(lips > 0) & upper] = UPPER_LIP
    seg[(lips > 0) & ~upper] = LOWER_LIP
    cv2.fillPoly(seg, [fix(parts.lips_inner)], MOUTH, shift=2)
    seg[alpha < 128] = 0
    return seg
