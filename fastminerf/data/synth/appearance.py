"""Per-identity appearance of the synthetic cast and the shading of a rendered frame.

An :class:`Appearance` holds colours (skin, lips, hair, brows, iris, teeth, tongue), the
region shapes (:class:`~.regions.Style`: hairline, brows) and a per-identity
high-frequency *pattern* (freckles, face-paint stripes, a birthmark, polka dots, rings,
chevrons). Every texture is a function of the **template-surface position** of the hit point
(the renderer interpolates it from the template vertices), so it sticks to the skin under
any expression and identity shape; a model that mixes identities gets the pattern
visibly and measurably wrong.

Shading is ambient + Lambert with a directional light fixed in world space; an optional
per-frame drift of that light (:class:`Light`) is what per-frame latent codes exist for.
"""
from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.spatial import cKDTree

from .fields import bump, soft_edge, value_noise
from .regions import BROW, EAR, EYE, HAIR, LOWER_LIP, MOUTH_INTERIOR, NECK, NOSE, SKIN, UPPER_LIP, Style, pixel_regions

PATTERNS = ("freckles", "stripes", "birthmark", "dots", "rings", "chevrons")

_SKIN_TONES = np.array([  # albedo, light → dark
    [0.96, 0.80, 0.69], [0.93, 0.74, 0.62], [0.87, 0.68, 0.55], [0.80, 0.60, 0.46],
    [0.70, 0.50, 0.37], [0.58, 0.40, 0.29], [0.45, 0.31, 0.22], [0.35, 0.24, 0.18],
])
_HAIR = np.array([[0.06, 0.05, 0.05], [0.20, 0.13, 0.08], [0.40, 0.26, 0.14], [0.62, 0.46, 0.26],
                  [0.85, 0.72, 0.48], [0.55, 0.20, 0.08], [0.62, 0.62, 0.62], [0.90, 0.90, 0.88]])
_IRIS = np.array([[0.25, 0.45, 0.75], [0.30, 0.55, 0.35], [0.40, 0.25, 0.12], [0.18, 0.11, 0.07],
                  [0.50, 0.55, 0.60], [0.55, 0.45, 0.20]])
_PAINT = np.array([[0.10, 0.35, 0.85], [0.85, 0.15, 0.15], [0.10, 0.65, 0.35], [0.95, 0.95, 0.95],
                   [0.95, 0.75, 0.10], [0.55, 0.20, 0.70], [0.05, 0.05, 0.08]])


@dataclass(frozen=True)
class Light:
    """Directional light (world space, towards the light) plus ambient; ``tint`` scales RGB."""

    direction: tuple[float, float, float] = (0.35, 0.45, 1.0)
    ambient: float = 0.42
    diffuse: float = 0.62
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass
class Appearance:
    """Colours (RGB albedo in [0, 1]), region shapes and the identity's pattern.

    ``pattern_points`` [M, 3] / ``pattern_sizes`` [M] are template-space anchors of the pattern
    (freckle centres, a birthmark centre, ...); ``pattern_dir`` [3] orients stripes/chevrons.
    """

    seed: int
    skin: np.ndarray
    lip: np.ndarray
    hair: np.ndarray
    brow: np.ndarray
    iris: np.ndarray
    teeth: np.ndarray
    tongue: np.ndarray
    blush: float
    stubble: float
    style: Style
    pattern: str
    pattern_colour: np.ndarray
    pattern_points: np.ndarray
    pattern_sizes: np.ndarray
    pattern_dir: np.ndarray
    pattern_period: float
    extra: dict = field(default_factory=dict)

    @functools.cached_property
    def point_tree(self):
        """KD-tree over ``pattern_points`` (built once per identity)."""
        return cKDTree(self.pattern_points)

    def to_json(self) -> dict:
        """A JSON-ready description (floats rounded so the text is byte-stable)."""
        d = asdict(self)
        d["style"] = {k: round(float(v), 6) for k, v in asdict(self.style).items()}
        for k, v in list(d.items()):
            if isinstance(v, np.ndarray):
                d[k] = np.round(v.astype(np.float64), 6).tolist()
            elif isinstance(v, float):
                d[k] = round(v, 6)
        return d


def sample_appearance(rng: np.random.Generator, index: int, template: np.ndarray, face_vertices: np.ndarray) -> Appearance:
    """Draw one identity's appearance.

    Args:
        rng: the identity's generator (the caller derives it from (seed, identity)).
        index: identity index; it picks the pattern kind cyclically so any few identities differ.
        template: [V, 3] template vertices; face_vertices: indices of front-face skin vertices
            (where freckles and birthmarks may sit).
    """
    tone = _SKIN_TONES[rng.integers(len(_SKIN_TONES))] * rng.uniform(0.95, 1.05, 3)
    skin = np.clip(tone, 0.05, 1.0)
    lip = np.clip(skin * [0.80, 0.52, 0.52] + rng.uniform(-0.04, 0.04, 3) + [0.06, 0.0, 0.02], 0.0, 1.0)
    hair = np.clip(_HAIR[rng.integers(len(_HAIR))] * rng.uniform(0.9, 1.1, 3), 0.0, 1.0)
    brow = np.clip(hair * 0.75 + 0.02, 0.0, 1.0) if hair.mean() < 0.6 else np.clip(hair * 0.55, 0.0, 1.0)
    iris = np.clip(_IRIS[rng.integers(len(_IRIS))] * rng.uniform(0.85, 1.15, 3), 0.0, 1.0)
    teeth = np.array([0.93, 0.91, 0.84]) * rng.uniform(0.9, 1.0) + [0.0, 0.0, rng.uniform(-0.05, 0.03)]
    tongue = np.array([0.80, 0.38, 0.40]) * rng.uniform(0.85, 1.05, 3)
    style = Style(
        hair_front=rng.uniform(0.58, 0.80), widow_peak=rng.uniform(0.0, 0.08), recession=rng.uniform(0.0, 0.16),
        hair_side=rng.uniform(0.45, 0.62), sideburn=rng.uniform(0.08, 0.40), nape=rng.uniform(-0.60, -0.25),
        bald=float(rng.uniform(0.25, 0.55)) if rng.random() < 0.15 else 0.0,
        brow_thickness=rng.uniform(0.0038, 0.0068), brow_arch=rng.uniform(0.002, 0.0065),
        brow_height=rng.uniform(0.016, 0.021),
    )
    kind = PATTERNS[index % len(PATTERNS)]
    colour = _PAINT[rng.integers(len(_PAINT))] if kind in ("stripes", "dots", "rings", "chevrons") else skin * [0.55, 0.40, 0.32]
    if kind == "birthmark":
        colour = np.array([0.55, 0.12, 0.18]) if rng.random() < 0.5 else skin * [0.5, 0.35, 0.28]
    n_pts = {"freckles": int(rng.integers(60, 120)), "birthmark": 1, "rings": 1}.get(kind, 1)
    pts = template[rng.choice(face_vertices, n_pts, replace=False)]
    sizes = {"freckles": rng.uniform(0.0007, 0.0016, n_pts), "birthmark": rng.uniform(0.008, 0.015, 1),
             "rings": rng.uniform(0.012, 0.02, 1)}.get(kind, np.array([rng.uniform(0.0012, 0.0022)]))
    direction = rng.normal(size=3)
    direction[2] *= 0.2
    direction /= np.linalg.norm(direction)
    return Appearance(
        seed=int(rng.integers(1 << 30)), skin=skin, lip=lip, hair=hair, brow=brow, iris=iris, teeth=teeth,
        tongue=tongue, blush=float(rng.uniform(0.0, 0.12)),
        stubble=float(rng.uniform(0.3, 0.8)) if rng.random() < 0.3 else 0.0, style=style, pattern=kind,
        pattern_colour=np.clip(colour, 0.0, 1.0), pattern_points=pts.astype(np.float64), pattern_sizes=sizes,
        pattern_dir=direction, pattern_period=float(rng.uniform(0.005, 0.009)),
    )


def pattern_mask(app: Appearance, p: np.ndarray) -> np.ndarray:
    """Coverage [P] in [0, 1] of the identity's pattern at template positions p [P, 3]."""
    kind = app.pattern
    if kind == "freckles":
        k = min(4, len(app.pattern_sizes))
        dist, idx = app.point_tree.query(p, k=k)
        d = (dist.reshape(-1, k) - app.pattern_sizes[idx.reshape(-1, k)]).min(axis=1)
        return soft_edge(-d, 0.0004)
    if kind == "birthmark":
        c, r = app.pattern_points[0], app.pattern_sizes[0]
        q = p - c
        ang = np.arctan2(q[:, 1], q[:, 0])
        wobble = 1.0 + 0.18 * np.sin(3 * ang + app.seed % 7) + 0.1 * np.sin(5 * ang + app.seed % 11)
        return soft_edge(r * wobble - np.linalg.norm(q, axis=1), 0.0008)
    region = bump(p, [0.0, -0.005, 0.09], (0.055, 0.045, 0.05))  # the face, away from the scalp and neck
    if kind == "stripes":
        s = np.sin(2 * np.pi * np.einsum("pi,i->p", p, app.pattern_dir) / app.pattern_period)
        return soft_edge(s - 0.35, 0.25) * soft_edge(region - 0.35, 0.1)
    if kind == "dots":
        per = app.pattern_period * 1.4
        q = (p[:, :2] - app.pattern_points[0, :2]) / per
        d = np.linalg.norm(q - np.round(q), axis=1) * per
        return soft_edge(app.pattern_sizes[0] - d, 0.0004) * soft_edge(region - 0.3, 0.1)
    if kind == "rings":
        c, r = app.pattern_points[0], app.pattern_sizes[0]
        d = np.linalg.norm(p - c, axis=1)
        s = np.sin(2 * np.pi * d / (0.45 * app.pattern_period))
        return soft_edge(s - 0.2, 0.3) * soft_edge(r - d, 0.001)
    if kind == "chevrons":
        per = app.pattern_period
        zig = p[:, 1] + 0.5 * np.abs(((p[:, 0] / per) % 2.0) - 1.0) * per
        s = np.sin(2 * np.pi * zig / per)
        forehead = bump(p, [0.0, 0.055, 0.08], (0.05, 0.018, 0.05))
        return soft_edge(s - 0.3, 0.3) * soft_edge(forehead - 0.3, 0.1)
    raise ValueError(f"unknown pattern {kind!r}")


def _skin_texture(p: np.ndarray, seed: int) -> np.ndarray:
    """Subtle pore-scale brightness variation [P] around 1 (three oblique sine gratings)."""
    rng = np.random.default_rng(seed)
    out = np.ones(p.shape[0])
    for _ in range(3):
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        out += 0.012 * np.sin(2 * np.pi * np.einsum("pi,i->p", p, d) / rng.uniform(0.003, 0.006) + rng.uniform(0, 6.3))
    return out


def albedo(app: Appearance, head, region: np.ndarray, attr: np.ndarray) -> np.ndarray:
    """RGB albedo [P, 3] of covered pixels.

    Args:
        app: the identity's appearance. head: the :class:`~.head.SynthHead`.
        region: [P] uint8 INSTA ids (from :func:`~.regions.pixel_regions`).
        attr: [P, 5] interpolated template xyz, pocket t and pocket depth.
    """
    p = attr[:, :3]
    col = np.empty((p.shape[0], 3))
    col[:] = app.skin
    tex = _skin_texture(p, app.seed)
    skinlike = np.isin(region, (SKIN, NOSE, EAR, NECK))
    # warmth on cheeks, nose and ears; necks a little darker
    warm = app.blush * (bump(p, [0.04, -0.02, 0.07], 0.018) + bump(p, [-0.04, -0.02, 0.07], 0.018)
                        + 0.6 * bump(p, [0.0, -0.02, 0.118], 0.01))
    col = col * (1.0 - warm[:, None] * [0.0, 0.5, 0.45])
    col[region == NECK] *= 0.93
    col[region == EAR] *= [1.0, 0.93, 0.9]
    if app.stubble > 0:
        beard = skinlike & (p[:, 1] < -0.04) & (p[:, 2] > -0.02) & (region != NECK)
        speck = value_noise(p[beard], 0.0016, app.seed)
        col[beard] *= 1.0 - app.stubble * 0.3 * soft_edge(speck - 0.55, 0.1)[:, None]
    col *= tex[:, None]
    pm = pattern_mask(app, p[skinlike])[:, None]
    col[skinlike] = col[skinlike] * (1.0 - pm) + app.pattern_colour * pm

    hair = region == HAIR
    if hair.any():
        q = p[hair]
        u = np.arctan2(q[:, 0], q[:, 2] + 0.01)
        strands = 0.86 + 0.1 * np.sin(u * 95.0 + 40.0 * q[:, 1]) + 0.04 * np.sin(u * 37.0 - 70.0 * q[:, 1])
        col[hair] = app.hair * strands[:, None]
    brow = region == BROW
    if brow.any():
        q = p[brow]
        col[brow] = app.brow * (0.85 + 0.15 * np.sin(q[:, 0] * 1100.0 + q[:, 1] * 600.0))[:, None]
    lips = (region == UPPER_LIP) | (region == LOWER_LIP)
    if lips.any():
        q = p[lips]
        lines = 1.0 - 0.05 * np.sin(q[:, 0] * 1300.0) ** 2
        col[lips] = app.lip * lines[:, None] * np.where(region[lips] == LOWER_LIP, 1.06, 1.0)[:, None]
    eye = region == EYE
    if eye.any():
        col[eye] = _eye_colour(app, head, p[eye])
    mouth = region == MOUTH_INTERIOR
    if mouth.any():
        col[mouth] = _mouth_colour(app, head, attr[mouth])
    return np.clip(col, 0.0, 1.0)


def _eye_colour(app: Appearance, head, p: np.ndarray) -> np.ndarray:
    """Sclera, iris (with a darker rim), pupil, by distance from the eye centre in template x-y."""
    lm = head.landmarks
    centre = np.where((p[:, 0] > 0)[:, None], lm["eye_L"], lm["eye_R"])
    r = np.hypot(p[:, 0] - centre[:, 0], p[:, 1] - centre[:, 1])
    col = np.empty((p.shape[0], 3))
    col[:] = [0.93, 0.92, 0.89]
    iris = soft_edge(0.0054 - r, 0.0004)
    rim = soft_edge(r - 0.0044, 0.0008)
    ic = app.iris * (1.0 - 0.45 * rim)[:, None]
    col = col * (1.0 - iris[:, None]) + ic * iris[:, None]
    pupil = soft_edge(0.0022 - r, 0.0003)
    return col * (1.0 - pupil[:, None]) + 0.03 * pupil[:, None]


def _mouth_colour(app: Appearance, head, attr: np.ndarray) -> np.ndarray:
    """Inner lips, gums, teeth (with gaps), palate, throat, tongue; darker deeper in the mouth."""
    t = np.clip(attr[:, 3], 0.0, 1.0)
    seg = np.clip(np.searchsorted(head.pocket_breaks, t, side="right") - 1, 0, len(head.pocket_materials) - 1)
    mats = np.array(head.pocket_materials)[seg]
    table = {"lip": app.lip * 0.8, "gum": np.array([0.80, 0.45, 0.48]), "tooth": app.teeth,
             "palate": np.array([0.62, 0.30, 0.32]), "throat": np.array([0.18, 0.04, 0.05]),
             "tongue": app.tongue, "floor": app.tongue * 0.7}
    col = np.stack([table[m] for m in mats]) if mats.size else np.zeros((0, 3))
    tooth = mats == "tooth"
    gaps = np.abs(((attr[tooth, 0] / 0.0042) + 0.5) % 1.0 - 0.5) < 0.06
    col[np.flatnonzero(tooth)[gaps]] *= 0.55
    occlusion = np.exp(-attr[:, 4] / 0.03)
    return col * occlusion[:, None]


def shade(app: Appearance, head, face_kind: np.ndarray, attr: np.ndarray, normals_world: np.ndarray,
          light: Light) -> tuple[np.ndarray, np.ndarray]:
    """Colours and regions of covered pixels.

    Args:
        face_kind: [P] topological kind of the hit triangles. attr: [P, 5] interpolated attributes.
        normals_world: [P, 3] unit normals in world space. light: the frame's light.
    Returns:
        rgb [P, 3] float64 in [0, 1], region [P] uint8.
    """
    region = pixel_regions(face_kind, attr[:, :3], (head.landmarks["eye_L"], head.landmarks["eye_R"]), app.style)
    a = albedo(app, head, region, attr)
    ldir = np.asarray(light.direction, np.float64)
    ldir = ldir / np.linalg.norm(ldir)
    lam = np.clip(np.einsum("pi,i->p", normals_world, ldir), 0.0, 1.0)
    rgb = a * (light.ambient + light.diffuse * lam)[:, None] * np.asarray(light.tint)
    return np.clip(rgb, 0.0, 1.0), region
