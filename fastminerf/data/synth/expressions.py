"""Expression blendshapes of the procedural head (ARKit-style names where they exist).

Each blendshape is a smooth displacement field over the template: mostly functions of a
vertex's template position (so the closed mouth line stays closed: its two edges share a
position), plus topological masks where an expression must tear the surface apart (the jaw
and a funnelled mouth open the lips; a blink slides an eye band onto its lower lid).
One unit coefficient is the full expression; coefficients in [0, 1] are the useful range.
"""
from __future__ import annotations

import numpy as np

from .fields import bump, smoothstep, vertex_normals

#: expression names in basis order (16, like INSTA's expression code)
EXPRESSION_NAMES = [
    "jawOpen", "mouthSmile_L", "mouthSmile_R", "mouthFrown", "mouthPucker", "mouthFunnel", "mouthPress",
    "mouthStretch", "mouthLeft", "mouthRight", "browInnerUp", "browOuterUp", "browDown",
    "eyeBlink_L", "eyeBlink_R", "cheekPuff",
]
JAW_ANGLE = 0.28  # radians of jaw rotation at jawOpen = 1
JAW_HINGE = np.array([0.0, -0.004, -0.006])


def jaw_weight(p: np.ndarray, mouth_side: np.ndarray, jaw_side: np.ndarray, corner_x: float, corner_y: float) -> np.ndarray:
    """[V] how much each vertex follows the jaw: chin, lower face, lower lip, lower pocket."""
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    # the jaw's upper edge runs through the mouth corners and slopes down across the cheeks
    top = corner_y + 0.003 - 0.6 * np.clip(np.abs(x) - corner_x, 0.0, None)
    span = 0.012 + 0.4 * np.clip(np.abs(x) - corner_x, 0.0, None)
    w = smoothstep(top, top - span, y) * smoothstep(-0.035, 0.0, z)
    # the neck stays: the weight fades under the chin, later towards the front of the throat
    w = w * smoothstep(-0.15 + 0.35 * np.clip(z - 0.02, 0.0, 0.1), -0.105, y)
    lateral = np.clip(1.0 - (x / corner_x) ** 2, 0.0, 1.0)
    lower = mouth_side < 0
    w = np.where(lower, np.maximum(w, jaw_side * lateral**0.3), w)
    return np.where(mouth_side > 0, 0.0, w)


def build_expression_basis(template: np.ndarray, faces: np.ndarray, lm: dict, mouth_side: np.ndarray,
                           jaw_side: np.ndarray, eye_columns: dict, lid_rows: dict) -> tuple[list[str], np.ndarray]:
    """Blendshapes of the template.

    Args:
        template: [V, 3] float64 template vertices. faces: [T, 3].
        lm: landmark positions ("eye_L", "eye_R", "mouth", "mouth_corner_L", "mouth_corner_R").
        mouth_side: [V] +1 upper lip / upper pocket, −1 lower side, 0 elsewhere.
        jaw_side: [V] jaw weight of the lower-side vertices.
        eye_columns: per eye [n, k] band vertex ids (upper lid row first, lower lid row last).
        lid_rows: per eye [3, n] ids of the skin rows above the band (top first).
    Returns:
        (names, basis [E, V, 3] float64).
    """
    p = template
    V = p.shape[0]
    x, y = p[:, 0], p[:, 1]
    m, cL, cR = lm["mouth"], lm["mouth_corner_L"], lm["mouth_corner_R"]
    cx = float(cL[0])
    out = {}

    # jawOpen: rotate the jaw about a hinge in front of the ears
    w = jaw_weight(p, mouth_side, jaw_side, cx, float(cL[1]))
    c, s = np.cos(JAW_ANGLE), np.sin(JAW_ANGLE)
    q = p - JAW_HINGE
    rot = np.stack([q[:, 0], c * q[:, 1] - s * q[:, 2], s * q[:, 1] + c * q[:, 2]], 1)
    d = (rot - q) * w[:, None]
    d[:, 1] += 0.0015 * bump(p, m + [0, 0.008, 0], (0.02, 0.008, 0.02)) * (mouth_side >= 0)  # upper lip lifts a little
    out["jawOpen"] = d

    def corner(cn, r=(0.016, 0.013, 0.02)):
        return bump(p, cn, r)

    for name, cn, sgn in (("mouthSmile_L", cL, 1.0), ("mouthSmile_R", cR, -1.0)):
        w = corner(cn)
        cheek = bump(p, cn + [sgn * 0.012, 0.022, -0.012], (0.016, 0.014, 0.016))
        d = np.zeros((V, 3))
        d += w[:, None] * [sgn * 0.0065, 0.0085, -0.004]
        d += cheek[:, None] * [sgn * 0.001, 0.0035, 0.003]
        out[name] = d

    d = np.zeros((V, 3))
    for cn in (cL, cR):
        d += corner(cn)[:, None] * [0.0, -0.006, -0.001]
    d[:, 1] -= 0.002 * bump(p, m + [0, -0.02, 0], (0.02, 0.012, 0.02))  # chin boss
    out["mouthFrown"] = d

    lips = bump(p, m, (0.022, 0.012, 0.02))
    out["mouthPucker"] = np.stack([-0.45 * (x - m[0]) * lips, -0.15 * (y - m[1]) * lips, 0.009 * lips], 1)

    # funnel: forward like a pucker, and the lips part around the middle
    lateral = np.clip(1.0 - (x / cx) ** 2, 0.0, 1.0)
    part = np.where(mouth_side > 0, 0.0035, np.where(mouth_side < 0, -0.0045, 0.0)) * lateral
    d = np.stack([-0.25 * (x - m[0]) * lips, -0.08 * (y - m[1]) * lips + part, 0.008 * lips], 1)
    out["mouthFunnel"] = d

    press = bump(p, m, (0.028, 0.012, 0.03))
    out["mouthPress"] = np.stack([np.zeros(V), -0.5 * (y - m[1]) * press, -0.002 * press], 1)

    d = np.zeros((V, 3))
    for cn, sgn in ((cL, 1.0), (cR, -1.0)):
        d += corner(cn, (0.018, 0.014, 0.02))[:, None] * [sgn * 0.007, -0.002, -0.002]
    out["mouthStretch"] = d

    region = bump(p, m, (0.03, 0.02, 0.03))
    out["mouthLeft"] = region[:, None] * [0.007, 0.0, -0.001]
    out["mouthRight"] = region[:, None] * [-0.007, 0.0, -0.001]

    eL, eR = lm["eye_L"], lm["eye_R"]
    d = np.zeros((V, 3))
    for e in (eL, eR):
        d[:, 1] += 0.007 * bump(p, [e[0] * 0.45, e[1] + 0.026, e[2] + 0.012], (0.012, 0.014, 0.02))
    out["browInnerUp"] = d
    d = np.zeros((V, 3))
    for e in (eL, eR):
        d[:, 1] += 0.0065 * bump(p, [e[0] * 1.05, e[1] + 0.024, e[2] + 0.008], (0.022, 0.014, 0.025))
    out["browOuterUp"] = d
    d = np.zeros((V, 3))
    for e in (eL, eR):
        w = bump(p, [e[0] * 0.8, e[1] + 0.022, e[2] + 0.012], (0.018, 0.011, 0.02))
        d += w[:, None] * [-np.sign(e[0]) * 0.003, -0.005, 0.0015]
    out["browDown"] = d

    for name, eye in (("eyeBlink_L", "eye_L"), ("eyeBlink_R", "eye_R")):
        d = np.zeros((V, 3))
        cols, lid = eye_columns[eye], lid_rows[eye]  # [n, k], [3, n]
        target = p[cols[:, -1]]  # lower lid, per column
        d[cols[:, :-1]] = target[:, None] - p[cols[:, :-1]]
        opening = target - p[cols[:, 0]]  # [n, 3] upper lid → lower lid
        across = np.linspace(-1.0, 1.0, cols.shape[0] + 2)[1:-1]
        soft = np.sqrt(1.0 - across**2)[:, None]
        for row, frac in zip(lid, (0.12, 0.3, 0.55)):
            d[row] = opening * frac * soft
        out[name] = d

    n = vertex_normals(p, faces)
    puff = sum(bump(p, [sg * 0.040, m[1] + 0.006, m[2] - 0.035], (0.017, 0.016, 0.018)) for sg in (1.0, -1.0))
    d = n * (0.009 * puff)[:, None]
    d[:, 2] += 0.002 * lips
    out["cheekPuff"] = d
    return list(EXPRESSION_NAMES), np.stack([out[k] for k in EXPRESSION_NAMES])
