"""Topology of the procedural head: a latitude–longitude grid bent around the eyes and mouth.

Every grid vertex is a ray from :data:`~fastminerf.data.synth.implicit.RAY_CENTRE` with an
azimuth ``u`` (0 = the face, +π/2 = the left ear) and an elevation ``v``; rows run from the
scalp (top pole) to the bottom of the neck (bottom pole). Around each eye and the mouth a
few rows are bent onto lid/lip curves (an :class:`Almond`) whose ends meet at a corner
column, where those rows merge into one vertex. So the eye opening and the lips are exact
unions of grid cells, and an eye closes by sliding its rows onto the lower lid.

The mouth line is a cut: on the slit row, between the two corners, the upper edge and the
lower edge are different vertices, joined by a pocket strip (see :mod:`.head`) that goes
back into the head, so the lips can part.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Almond:
    """Curves in (u, v) that share two corners: lids of an eye or the lip lines.

    Key curve k is ``v = v0 + tilt·s − drop·s² + heights[k]·(1 − s²)^power[k] · (1 − dip[k]·exp(−(s/0.2)²))``
    for ``s = (u − u0)/half_width ∈ [−1, 1]`` (``s`` grows towards the outer corner of an eye).
    Rows between key curves are spread evenly; ``cells[k]`` grid cells lie between curves k
    and k + 1. Beyond the corners the band rows relax back to their regular height over ``relax``.
    """

    name: str
    u0: float
    half_width: float
    v0: float
    heights: tuple[float, ...]
    cells: tuple[int, ...]
    power: tuple[float, ...]
    dip: tuple[float, ...]
    tilt: float = 0.0
    drop: float = 0.0
    relax: float = 0.15

    @property
    def corners(self) -> tuple[float, float]:
        return (self.u0 - self.half_width, self.u0 + self.half_width)

    def s(self, u: np.ndarray) -> np.ndarray:
        """Signed position across the almond, +1 at the corner away from the face midline."""
        side = 1.0 if self.u0 >= 0 else -1.0
        return side * (u - self.u0) / self.half_width

    def curve(self, k: int, u: np.ndarray) -> np.ndarray:
        """v of key curve k at azimuths u (only meaningful for |s| ≤ 1)."""
        s = np.clip(self.s(u), -1.0, 1.0)
        bump = (1.0 - s * s) ** self.power[k] * (1.0 - self.dip[k] * np.exp(-((s / 0.2) ** 2)))
        return self.v0 + self.tilt * s - self.drop * s * s + self.heights[k] * bump


#: the three bent bands: two eyes (upper lid → lower lid) and the lips (upper border → mouth line → lower border)
EYE_L = Almond("eye_L", u0=0.36, half_width=0.145, v0=0.304, heights=(0.060, -0.040), cells=(4,),
               power=(0.8, 0.9), dip=(0.0, 0.0), tilt=0.012, relax=0.14)
EYE_R = Almond("eye_R", u0=-0.36, half_width=0.145, v0=0.304, heights=(0.060, -0.040), cells=(4,),
               power=(0.8, 0.9), dip=(0.0, 0.0), tilt=0.012, relax=0.14)
MOUTH = Almond("mouth", u0=0.0, half_width=0.215, v0=-0.290, heights=(0.056, 0.0, -0.082), cells=(3, 3),
               power=(0.55, 1.0, 0.6), dip=(0.22, 0.0, 0.0), drop=0.022, relax=0.16)


def _fill(a: float, b: float, spacing) -> np.ndarray:
    """Points from a to b (a < b, both included) spaced by ``spacing(x)`` (inverse-CDF placement)."""
    xs = np.linspace(a, b, 512)
    dens = 1.0 / spacing(xs)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(xs))])
    n = max(1, int(np.ceil(cdf[-1] - 0.25)))
    return np.interp(np.linspace(0.0, cdf[-1], n + 1), cdf, xs)


def _column_spacing(u: np.ndarray) -> np.ndarray:
    return np.interp(np.abs(u), [0.0, 0.9, 1.25, 1.9, 2.4, np.pi], [0.043, 0.043, 0.072, 0.075, 0.15, 0.19])


def _row_spacing(v: np.ndarray) -> np.ndarray:
    return np.interp(v, [-np.pi / 2, -1.25, -0.92, 0.55, 0.82, np.pi / 2], [0.16, 0.1, 0.037, 0.037, 0.1, 0.14])


@dataclass
class Grid:
    """Angles and index bookkeeping of the bent grid (R rows × C columns, plus two poles).

    Attributes:
        u: [C] column azimuths in [−π, π), ascending; include 0, −π and every corner.
        v_regular: [R] row elevations before bending, descending (row 0 near the scalp top).
        v: [R, C] bent elevations.
        bands: {name: (Almond, key row indices, first corner column, last corner column)}.
        slit_row: the mouth-line row index.
    """

    u: np.ndarray
    v_regular: np.ndarray
    v: np.ndarray
    bands: dict
    slit_row: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.v.shape


def _columns() -> np.ndarray:
    keys = sorted({0.0, *(abs(c) for a in (EYE_L, MOUTH) for c in a.corners), np.pi})
    half = np.unique(np.concatenate([_fill(a, b, _column_spacing) for a, b in zip(keys[:-1], keys[1:])]))
    return np.concatenate([-half[::-1][:-1], half[:-1]])  # [−π, π): −π once, 0 once


def _rows() -> tuple[np.ndarray, dict[str, list[int]]]:
    """Regular row elevations (descending) and the key-row indices of each band."""
    eye_keys = [EYE_L.v0 + h for h in EYE_L.heights]
    mouth_keys = [MOUTH.v0 + h for h in MOUTH.heights]
    lo, hi = -np.pi / 2, np.pi / 2
    ascending = list(_fill(lo, mouth_keys[2], _row_spacing)[1:-1])
    ascending += list(np.linspace(mouth_keys[2], mouth_keys[1], MOUTH.cells[1] + 1)[:-1])
    ascending += list(np.linspace(mouth_keys[1], mouth_keys[0], MOUTH.cells[0] + 1)[:-1])
    ascending += list(_fill(mouth_keys[0], eye_keys[1], _row_spacing)[:-1])
    ascending += list(np.linspace(eye_keys[1], eye_keys[0], EYE_L.cells[0] + 1)[:-1])
    ascending += list(_fill(eye_keys[0], hi, _row_spacing)[:-1])
    rows = np.array(ascending[::-1])  # descending, poles excluded

    def index(val: float) -> int:
        return int(np.argmin(np.abs(rows - val)))

    keys = {"eye": [index(k) for k in eye_keys], "mouth": [index(k) for k in mouth_keys]}
    return rows, keys


def build_grid() -> Grid:
    """The bent grid (deterministic)."""
    u = _columns()
    rows, keys = _rows()
    v = np.repeat(rows[:, None], u.size, axis=1)
    bands = {}
    for alm, key_rows in ((EYE_L, keys["eye"]), (EYE_R, keys["eye"]), (MOUTH, keys["mouth"])):
        lo_u, hi_u = alm.corners
        c0, c1 = int(np.argmin(np.abs(u - lo_u))), int(np.argmin(np.abs(u - hi_u)))
        assert abs(u[c0] - lo_u) < 1e-9 and abs(u[c1] - hi_u) < 1e-9, "corner columns missing"
        s = alm.s(u)
        inside = np.abs(s) <= 1.0
        # beyond a corner: distance in u past it, and a weight 1 → 0 across the relax zone
        past = np.minimum(np.abs(u - lo_u), np.abs(u - hi_u))
        g = np.clip(1.0 - past / alm.relax, 0.0, 1.0) ** 2
        corner_v = alm.curve(0, np.where(u < alm.u0, lo_u, hi_u))
        for k in range(len(key_rows) - 1):
            r0, r1 = key_rows[k], key_rows[k + 1]
            top, bot = alm.curve(k, u), alm.curve(k + 1, u)
            for r in range(r0, r1 + 1):
                f = (r - r0) / (r1 - r0)
                bent = top + (bot - top) * f
                relaxed = v[r] + (corner_v - v[r]) * g  # other columns keep their height
                v[r] = np.where(inside, bent, relaxed)
        bands[alm.name] = (alm, list(key_rows), c0, c1)
    return Grid(u=u, v_regular=rows, v=v, bands=bands, slit_row=keys["mouth"][1])
