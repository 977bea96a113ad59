"""Face-parsing regions (INSTA ids) of the procedural head.

Eyes, lips and the mouth interior are topological (whole triangles, see ``SynthHead.face_kind``).
The rest of the skin is split by functions of the *template* position, evaluated per vertex
(for ``vertex_regions.npy``) and per pixel (for ``seg_mask/``) with the same code: neck,
ears, nose, brows and the per-identity hair region (hairline shape is part of a
:class:`Style`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..regions import Region
from .implicit import RAY_CENTRE

SKIN, BROW, EYE, EAR, NOSE, MOUTH_INTERIOR, UPPER_LIP, LOWER_LIP, NECK, HAIR = (
    Region.SKIN, Region.BROW, Region.EYE, Region.EAR, Region.NOSE, Region.MOUTH_INTERIOR, Region.UPPER_LIP,
    Region.LOWER_LIP, Region.NECK, Region.HAIR)


@dataclass(frozen=True)
class Style:
    """Per-identity region shapes: hairline (elevations in radians seen from the head centre) and brows."""

    hair_front: float = 0.70  # hairline height at the forehead midline
    widow_peak: float = 0.0  # dip of the hairline at the midline
    recession: float = 0.05  # how far the temples recede (M-shaped hairline)
    hair_side: float = 0.52  # hairline height above the ears
    sideburn: float = 0.22  # lowest point of the sideburns
    nape: float = -0.45  # hairline height at the back of the neck
    bald: float = 0.0  # > 0 opens a bald patch on the crown (radius in radians)
    brow_thickness: float = 0.0050  # metres
    brow_arch: float = 0.0040  # metres
    brow_height: float = 0.0180  # metres above the eye centre

    def hairline(self, u: np.ndarray) -> np.ndarray:
        """Elevation of the hairline at azimuth u (hair above it)."""
        a = np.abs(u)
        knots = [0.0, 0.18, 0.45, 0.8, 1.2, 1.38, 1.58, 1.9, 2.4, np.pi]
        vals = [self.hair_front - self.widow_peak, self.hair_front, self.hair_front - self.recession,
                self.hair_side + 0.12, self.hair_side, self.sideburn, self.hair_side, self.hair_side - 0.15,
                self.nape + 0.25, self.nape]
        return np.interp(a, knots, vals)


def angles(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth u and elevation v [N] of template points p [N, 3] seen from the ray centre."""
    q = p - RAY_CENTRE
    return np.arctan2(q[:, 0], q[:, 2]), np.arctan2(q[:, 1], np.hypot(q[:, 0], q[:, 2]))


def skin_regions(p: np.ndarray, eyes: tuple[np.ndarray, np.ndarray], style: Style) -> np.ndarray:
    """Region ids [N] uint8 of skin points given their template positions p [N, 3] (float).

    eyes: template eye centres (left, right), used to place the brows."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    u, v = angles(p)
    out = np.full(p.shape[0], SKIN, np.uint8)
    # hair: above the identity's hairline, with an optional bald crown
    hair = v > style.hairline(u)
    if style.bald > 0:
        hair &= np.hypot(u * np.cos(v), v - 1.2) > style.bald
    out[hair] = HAIR
    # neck: below the jaw line (the under-chin included, as face parsers label it)
    jaw = np.interp(np.abs(u), [0.0, 0.5, 1.0, 1.5, 2.2, np.pi], [-0.86, -0.80, -0.66, -0.56, -0.52, -0.50])
    out[v < jaw] = NECK
    # nose: a tapered strip down the middle of the face, in front of the cheeks
    t = np.clip((0.024 - y) / 0.060, 0.0, 1.0)  # 0 at the bridge, 1 below the nostrils
    half = 0.0065 + 0.0125 * t**1.5
    out[(np.abs(x) < half) & (y < 0.024) & (y > -0.037) & (z > 0.086 + 0.012 * t)] = NOSE
    # brows: an arch above each eye
    for e in eyes:
        s = (x - e[0]) / 0.025 * np.sign(e[0])  # −1 at the inner end, +1 at the outer end
        mid = e[1] + style.brow_height + style.brow_arch * (1 - s * s) - 0.0015 * s
        thick = style.brow_thickness * (1.15 - 0.35 * s)
        out[(np.abs(s) < 1.0) & (np.abs(y - mid) < 0.5 * thick) & (z > e[2] - 0.01)] = BROW
    # ears: an ellipse on each side of the head
    ear = ((y - 0.002) / 0.034) ** 2 + ((z + 0.014) / 0.022) ** 2 < 1.0
    out[ear & (np.abs(x) > 0.064)] = EAR
    return out


#: topological kinds in rising priority: a vertex on the border of two kinds takes the later one
_PRIORITY = (MOUTH_INTERIOR, EYE, LOWER_LIP, UPPER_LIP)


def vertex_regions(head, style: Style | None = None) -> np.ndarray:
    """[V] uint8 region of every vertex of a :class:`~.head.SynthHead` (hair from ``style``)."""
    m = head.model
    lm = head.landmarks
    out = skin_regions(m.vertices.astype(np.float64), (lm["eye_L"], lm["eye_R"]), style or Style())
    for kind in _PRIORITY:
        out[m.faces[head.face_kind == kind].ravel()] = kind
    return out


def pixel_regions(face_kind: np.ndarray, template_pos: np.ndarray, eyes, style: Style) -> np.ndarray:
    """Region ids [P] of covered pixels: topological kind of the hit triangle face_kind [P], or for SKIN the
    skin function of the interpolated template position [P, 3]."""
    out = face_kind.astype(np.uint8).copy()
    skin = out == SKIN
    out[skin] = skin_regions(template_pos[skin], eyes, style)
    return out
