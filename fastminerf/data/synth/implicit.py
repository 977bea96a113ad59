"""The smooth implicit head shape behind the procedural head model.

The head is a smooth union of simple primitives (ellipsoids, capsules, round cones) in head
space (metres, +y up, +z out of the face, +x towards the person's left ear). The mesh of
:mod:`fastminerf.data.synth.head` is made by casting a fixed family of rays from an inside
point and keeping the outermost crossing of this field, so changing a shape parameter moves
every vertex along its own ray: that is how the identity modes are made (finite
differences of :func:`project_rays` under :class:`ShapeParams` perturbations).

Field convention: ``head_field(p) < 0`` inside, ``> 0`` outside; it is distance-like (about
metres near the surface) but not an exact distance.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

#: the point every mesh ray starts from (inside the head, behind the face)
RAY_CENTRE = np.array([0.0, -0.02, -0.01])


@dataclass(frozen=True)
class ShapeParams:
    """Scalar shape parameters (metres / unitless scales) of the mean head."""

    skull_w: float = 0.076  # skull half-width (x)
    skull_h: float = 0.093  # skull half-height (y)
    skull_d: float = 0.100  # skull half-depth (z)
    face_h: float = 1.0  # lower-face height scale (chin drop)
    jaw_w: float = 0.059  # jaw half-width
    chin_y: float = -0.098  # chin centre height
    chin_z: float = 0.072  # chin projection
    cheek: float = 1.0  # cheekbone prominence scale
    cheek_full: float = 1.0  # fleshy cheek scale
    brow: float = 1.0  # brow-ridge prominence scale
    nose_len: float = 0.0  # nose tip drop (m)
    nose_proj: float = 0.0  # nose tip projection (m)
    nose_w: float = 1.0  # nostril width scale
    lip_full: float = 1.0  # lip thickness scale
    ear_size: float = 1.0  # ear size scale
    ear_out: float = 0.0  # ear protrusion (m)
    forehead: float = 0.0  # forehead slope (m forward at the top of the face)
    neck_r: float = 0.054  # neck radius

    def perturbed(self, **deltas: float) -> ShapeParams:
        """A copy with ``deltas`` added to the named fields."""
        return replace(self, **{k: getattr(self, k) + v for k, v in deltas.items()})


def _ellipsoid(p: np.ndarray, c, r) -> np.ndarray:
    """Distance-like field of an axis-aligned ellipsoid (a lower bound outside). p [3, N] → [N]."""
    q = ((p[0] - c[0]) / r[0]) ** 2 + ((p[1] - c[1]) / r[1]) ** 2 + ((p[2] - c[2]) / r[2]) ** 2
    return (np.sqrt(q) - 1.0) * min(r)


def _round_cone(p: np.ndarray, a, b, ra: float, rb: float) -> np.ndarray:
    """Capsule from a (radius ra) to b (radius rb), radius linear along the axis. p [3, N] → [N]."""
    ab = [b[i] - a[i] for i in range(3)]
    ab2 = sum(x * x for x in ab)
    d = [p[i] - a[i] for i in range(3)]
    t = np.clip((d[0] * ab[0] + d[1] * ab[1] + d[2] * ab[2]) / ab2, 0.0, 1.0)
    dist = np.sqrt(sum((d[i] - t * ab[i]) ** 2 for i in range(3)))
    return dist - (ra + (rb - ra) * t)


def _smin(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Polynomial smooth minimum (smooth union) with blend width k."""
    h = np.maximum(k - np.abs(a - b), 0.0) / k
    return np.minimum(a, b) - h * h * k * 0.25


def _smax(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Smooth maximum (smooth intersection / subtraction with -b)."""
    return -_smin(-a, -b, k)


def _mirror(p: np.ndarray) -> np.ndarray:
    """Points [3, N] with |x|, so left/right paired features are written once."""
    return np.stack([np.abs(p[0]), p[1], p[2]])


def head_field(points: np.ndarray, s: ShapeParams) -> np.ndarray:
    """Evaluate the implicit head at points [N, 3] (float64) → [N] (negative inside)."""
    p = np.ascontiguousarray(np.asarray(points, np.float64).T)  # [3, N]: one contiguous row per axis
    m = _mirror(p)
    skull = _ellipsoid(p, (0, 0.022, -0.014 - s.forehead * 0.5), (s.skull_w, s.skull_h, s.skull_d))
    fh = s.face_h  # forehead/face block: flatter and more forward than the skull
    face = _ellipsoid(p, (0, -0.012 - 0.01 * (fh - 1), 0.024 + s.forehead), (0.062, 0.084 * fh, 0.068))
    jaw = _ellipsoid(p, (0, -0.060 * fh, 0.014), (s.jaw_w, 0.052 * fh, 0.068))
    muzzle = _ellipsoid(p, (0, -0.050 * fh, 0.060), (0.033, 0.030 * fh, 0.037))
    chin = _ellipsoid(p, (0, s.chin_y * fh, s.chin_z), (0.024, 0.0135, 0.014))
    f = _smin(skull, face, 0.03)
    f = _smin(f, jaw, 0.03)
    f = _smin(f, muzzle, 0.02)
    f = _smin(f, chin, 0.028)
    cheekbone = _ellipsoid(m, (0.046, -0.004, 0.046 + 0.006 * s.cheek), (0.020, 0.016 * s.cheek, 0.026))
    cheek = _ellipsoid(m, (0.036, -0.034, 0.052), (0.024 * s.cheek_full, 0.028, 0.025 * s.cheek_full))
    f = _smin(f, cheekbone, 0.02)
    f = _smin(f, cheek, 0.02)
    brow = _round_cone(m, (0.0, 0.033, 0.087 + 0.004 * s.brow), (0.048, 0.029, 0.071), 0.009 * s.brow, 0.007 * s.brow)
    f = _smin(f, brow, 0.014)
    # eye sockets carved out, eyeballs put back
    socket = _ellipsoid(m, (0.032, 0.012, 0.094), (0.019, 0.014, 0.016))
    f = _smax(f, -socket, 0.01)
    eyeball = _ellipsoid(m, (0.032, 0.011, 0.071), (0.0125, 0.0125, 0.0125))
    f = _smin(f, eyeball, 0.004)
    # nose: dorsum as a round cone, tip, nostril wings
    tip = (0.0, -0.0215 - s.nose_len, 0.116 + s.nose_proj)
    dorsum = _round_cone(p, (0.0, 0.024, 0.090), tip, 0.0055, 0.0082)
    wings = _ellipsoid(m, (0.0115 * s.nose_w, -0.0275 - 0.4 * s.nose_len, 0.099), (0.0085 * s.nose_w, 0.0075, 0.009))
    nose = _smin(dorsum, wings, 0.008)
    f = _smin(f, nose, 0.008)
    # lips: two soft rolls meeting at the mouth line
    lf = s.lip_full
    upper = _ellipsoid(p, (0, -0.0465, 0.092), (0.024, 0.0065 * lf, 0.0095 * lf))
    lower = _ellipsoid(p, (0, -0.0600, 0.090), (0.021, 0.0075 * lf, 0.0095 * lf))
    f = _smin(f, upper, 0.007)
    f = _smin(f, lower, 0.007)
    mouth_line = _ellipsoid(p, (0, -0.0535, 0.101), (0.023, 0.0011, 0.009))
    f = _smax(f, -mouth_line, 0.002)
    # ears: flattened ellipsoids with a bowl carved in
    es = s.ear_size
    ear = _ellipsoid(m, (0.071 + s.ear_out, 0.002, -0.014), (0.016 + s.ear_out, 0.031 * es, 0.019 * es))
    bowl = _ellipsoid(m, (0.089 + 1.6 * s.ear_out, -0.004, -0.010), (0.008, 0.014 * es, 0.010 * es))
    f = _smin(f, _smax(ear, -bowl, 0.004), 0.008)
    # neck: a vertical capsule cut flat at the bottom
    neck = _round_cone(p, (0.0, -0.03, -0.022), (0.0, -0.40, -0.022), s.neck_r, s.neck_r * 1.12)
    neck = _smax(neck, -(p[1] + 0.23), 0.01)
    f = _smin(f, neck, 0.03)
    return f


def ray_directions(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit ray directions for azimuth u (0 = +z, +π/2 = +x) and elevation v. → [..., 3]."""
    cv = np.cos(v)
    return np.stack([cv * np.sin(u), np.sin(v), cv * np.cos(u)], axis=-1)


def project_rays(dirs: np.ndarray, s: ShapeParams, near: np.ndarray | None = None, base: ShapeParams | None = None,
                 t_max: float = 0.36, step: float = 0.003, window: float = 0.012, iters: int = 22) -> np.ndarray:
    """Distance along each ray from :data:`RAY_CENTRE` to the outermost crossing of the field.

    Args:
        dirs: [N, 3] unit directions.
        s: shape parameters.
        near: optional [N] hits for the shape ``base``; the search is then limited to ±window
            around them, and rays along which the field did not change keep their hit exactly.
    Returns:
        [N] float64 distances.
    """
    N = dirs.shape[0]
    if near is None:
        lo_t, hi_t = np.zeros(N), np.full(N, t_max)
    else:
        lo_t, hi_t = near - window, near + window
        step = step / 2
    n_steps = int(np.ceil((hi_t - lo_t).max() / step)) + 1
    ts = hi_t[:, None] - (hi_t - lo_t)[:, None] * np.linspace(0.0, 1.0, n_steps)[None]  # [N, S] far → near
    pts = (RAY_CENTRE + ts[..., None] * dirs[:, None]).reshape(-1, 3)
    f = head_field(pts, s).reshape(N, n_steps)
    todo = np.arange(N)
    if near is not None:  # unchanged field along the ray → unchanged hit
        todo = np.flatnonzero((f != head_field(pts, base).reshape(N, n_steps)).any(axis=1))
    inside = f[todo] < 0
    if not inside.any(axis=1).all():
        raise RuntimeError("head field: some rays never enter the head")
    k = inside.argmax(axis=1)  # first inside sample, walking inwards
    if (k == 0).any():
        raise RuntimeError("head field: surface beyond the search window")
    t_in, t_out = ts[todo, k], ts[todo, k - 1]
    d = dirs[todo]
    for _ in range(iters):  # bisection between an outside and an inside sample
        mid = 0.5 * (t_in + t_out)
        ins = head_field(RAY_CENTRE + mid[:, None] * d, s) < 0
        t_in = np.where(ins, mid, t_in)
        t_out = np.where(ins, t_out, mid)
    out = np.array(near, np.float64) if near is not None else np.empty(N)
    out[todo] = 0.5 * (t_in + t_out)
    return out
