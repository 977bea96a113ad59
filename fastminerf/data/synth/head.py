"""The procedural head model ``fastminerf-synth-head-v1`` (no external model files).

:func:`build_head_model` returns a :class:`~fastminerf.data.face_model.FaceModel`:
vertices = template + Σ identity modes + Σ expression blendshapes, one topology for every
identity and frame. How it is made:

1. a bent latitude–longitude grid of rays (:mod:`.grid`) is shot from inside a smooth
   implicit head (:mod:`.implicit`); the outermost crossings are the template vertices;
2. the mouth line is cut and a pocket strip (inner lips, teeth, palate, throat, tongue) is
   hung from it into the head, so the lips part onto a visible mouth interior;
3. identity modes are finite differences of the implicit surface along the same rays under
   named shape-parameter changes (head width, nose length, ...), so they are smooth;
4. expression blendshapes are smooth displacement fields (:mod:`.expressions`).

Everything is deterministic; the model is built once per process (a second or two).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from ..face_model import FaceModel
from ..regions import Region
from .expressions import build_expression_basis
from .grid import Grid, build_grid
from .implicit import RAY_CENTRE, ShapeParams, project_rays, ray_directions
from .regions import vertex_regions

MODEL_NAME = "fastminerf-synth-head-v1"

#: identity modes: name → shape-parameter change of one unit coefficient (≈ one standard deviation)
IDENTITY_MODES: dict[str, dict[str, float]] = {
    "head_width": {"skull_w": 0.004},
    "head_height": {"skull_h": 0.005},
    "head_depth": {"skull_d": 0.005},
    "face_length": {"face_h": 0.06},
    "jaw_width": {"jaw_w": 0.005},
    "chin_projection": {"chin_z": 0.005},
    "chin_length": {"chin_y": -0.005},
    "cheekbones": {"cheek": 0.35},
    "cheek_fullness": {"cheek_full": 0.15},
    "brow_ridge": {"brow": 0.35},
    "nose_length": {"nose_len": 0.004},
    "nose_projection": {"nose_proj": 0.004},
    "nose_width": {"nose_w": 0.18},
    "lip_fullness": {"lip_full": 0.2},
    "ear_size": {"ear_size": 0.12, "ear_out": 0.002},
    "forehead_slope": {"forehead": 0.006},
    "neck_width": {"neck_r": 0.004},
}

#: pocket profile hung from the mouth line: (dy, dz) metres from the slit vertex, upper edge →
#: lower edge, and the material of the stretch that starts at each point
POCKET_PROFILE: list[tuple[float, float, str]] = [
    (0.0020, -0.0045, "lip"),  # inner upper lip
    (0.0035, -0.0075, "gum"),
    (0.0012, -0.0085, "tooth"),  # upper incisors, front face
    (-0.0035, -0.0088, "tooth"),
    (-0.0035, -0.0115, "tooth"),
    (0.0030, -0.0140, "palate"),
    (0.0090, -0.0250, "palate"),
    (0.0100, -0.0380, "palate"),
    (0.0030, -0.0480, "throat"),
    (-0.0080, -0.0530, "throat"),  # back wall: half skull, half jaw
    (-0.0190, -0.0470, "tongue"),
    (-0.0120, -0.0350, "tongue"),
    (-0.0070, -0.0220, "tongue"),
    (-0.0075, -0.0150, "floor"),
    (-0.0105, -0.0125, "tooth"),  # lower incisors: back, edge, front
    (-0.0025, -0.0110, "tooth"),
    (-0.0025, -0.0095, "tooth"),
    (-0.0080, -0.0092, "gum"),
    (-0.0060, -0.0045, "lip"),  # inner lower lip
]
POCKET_JAW = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
MATERIALS = ("lip", "gum", "tooth", "palate", "throat", "tongue", "floor")

#: topological face kinds (region ids; SKIN triangles are refined per pixel and vertex by .regions)
SKIN, EYE, MOUTH_INTERIOR, UPPER_LIP, LOWER_LIP = (Region.SKIN, Region.EYE, Region.MOUTH_INTERIOR, Region.UPPER_LIP,
                                                  Region.LOWER_LIP)


@dataclass
class SynthHead:
    """The head model plus what the renderer and the appearance need to know about it.

    Attributes:
        model: the :class:`FaceModel` (template, faces, bases, names, generic regions).
        face_kind: [T] uint8 topological kind of each triangle (SKIN, EYE, MOUTH_INTERIOR,
            UPPER_LIP, LOWER_LIP).
        pocket_t: [V] float32 position along the mouth pocket (0 = upper lip edge, 1 = lower
            lip edge, −1 off the pocket); ``pocket_breaks`` [M+1] and ``pocket_materials`` [M]
            name the material of each t-interval.
        pocket_depth: [V] float32 metres behind the mouth line (0 off the pocket).
        landmarks: {name: [3] float32 template position} (eye centres, mouth corners, ...).
    """

    model: FaceModel
    face_kind: np.ndarray
    pocket_t: np.ndarray
    pocket_breaks: np.ndarray
    pocket_materials: tuple[str, ...]
    pocket_depth: np.ndarray
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)

    @functools.cached_property
    def attributes(self) -> np.ndarray:
        """[V, 5] float64 per-vertex values the renderer interpolates: template xyz, pocket t, pocket depth."""
        m = self.model
        return np.concatenate([m.vertices, self.pocket_t[:, None], self.pocket_depth[:, None]], 1).astype(np.float64)


@dataclass
class _Topology:
    """Vertex ids of the bent grid, the slit and the pocket, and the triangles."""

    grid_ids: np.ndarray  # [R, C] ids (merged at corners)
    lower_slit: np.ndarray  # [C] ids used below the mouth line (copies between the corners)
    pocket_ids: np.ndarray  # [K, C] ids (−1 outside the mouth)
    top: int
    bottom: int
    n_vertices: int
    faces: np.ndarray
    face_kind: np.ndarray
    # what each vertex is: grid (row, col) for grid vertices and slit copies, −1 otherwise
    vertex_row: np.ndarray
    vertex_col: np.ndarray
    pocket_k: np.ndarray  # [V] index into POCKET_PROFILE, −1 off the pocket


def _strip(top: np.ndarray, bottom: np.ndarray, cols: np.ndarray, u: np.ndarray, C: int) -> np.ndarray:
    """Two triangles per quad between rows ``top`` [C] and ``bottom`` [C] for the quads that start
    at columns ``cols``; diagonals mirror across the face midline. → [2·len(cols), 3]."""
    j1 = (cols + 1) % C
    a, b, c, d = top[cols], top[j1], bottom[cols], bottom[j1]
    left = (u[cols] < 0)[:, None]  # quads left of the midline use the other diagonal
    t1 = np.where(left, np.stack([a, c, d], 1), np.stack([a, c, b], 1))
    t2 = np.where(left, np.stack([a, d, b], 1), np.stack([b, c, d], 1))
    return np.concatenate([t1, t2])


def _topology(g: Grid) -> _Topology:
    R, C = g.shape
    ids = np.arange(R * C).reshape(R, C) + 1  # 0 = top pole
    # merge the band rows at each corner column into the first key row's vertex
    for _alm, keys, c0, c1 in g.bands.values():
        for c in (c0, c1):
            ids[keys[0] : keys[-1] + 1, c] = ids[keys[0], c]
    n = R * C + 1
    bottom = n
    n += 1
    _, m_keys, mc0, mc1 = g.bands["mouth"]
    s = g.slit_row
    mouth_cols = np.arange(mc0 + 1, mc1)  # strictly between the corners
    lower_slit = ids[s].copy()
    lower_slit[mouth_cols] = n + np.arange(mouth_cols.size)
    n += mouth_cols.size
    K = len(POCKET_PROFILE)
    pocket = np.full((K, C), -1, np.int64)
    pocket[:, mouth_cols] = n + np.arange(K * mouth_cols.size).reshape(K, -1)
    n += K * mouth_cols.size
    pocket[:, [mc0, mc1]] = ids[s, [mc0, mc1]]  # pocket rows end in the corner vertex
    # compact the ids (merged grid vertices left holes)
    used = np.zeros(n, bool)
    used[ids] = True
    used[[0, bottom]] = True
    used[lower_slit] = True
    used[pocket[pocket >= 0]] = True
    remap = np.cumsum(used) - 1
    ids, lower_slit, pocket = remap[ids], remap[lower_slit], np.where(pocket >= 0, remap[np.maximum(pocket, 0)], -1)
    top_id, bottom_id, n_v = int(remap[0]), int(remap[bottom]), int(used.sum())

    all_cols = np.arange(C)
    faces, kinds = [], []

    def add(tris: np.ndarray, kind) -> None:
        faces.append(tris)
        kinds.append(np.broadcast_to(np.asarray(kind, np.uint8), (tris.shape[0],)))

    add(np.stack([np.full(C, top_id), ids[0], ids[0][(all_cols + 1) % C]], 1), SKIN)
    eye_quads = {}
    for name in ("eye_L", "eye_R"):
        _, keys, c0, c1 = g.bands[name]
        eye_quads[name] = (keys[0], keys[-1], np.arange(c0, c1))
    for r in range(R - 1):
        kind = np.full(C, SKIN, np.uint8)
        for r0, r1, cols in eye_quads.values():
            if r0 <= r < r1:
                kind[cols] = EYE
        if m_keys[0] <= r < s:
            kind[mc0:mc1] = UPPER_LIP
        if s <= r < m_keys[-1]:
            kind[mc0:mc1] = LOWER_LIP
        top_row = lower_slit if r == s else ids[r]  # below the mouth line the lower edge is used
        add(_strip(top_row, ids[r + 1], all_cols, g.u, C), np.concatenate([kind, kind]))
    add(np.stack([np.full(C, bottom_id), ids[R - 1][(all_cols + 1) % C], ids[R - 1]], 1), SKIN)
    # the pocket: upper edge → profile rows → lower edge, over the mouth columns
    chain = [ids[s]] + [pocket[k] for k in range(K)] + [lower_slit]
    qcols = np.arange(mc0, mc1)
    for k in range(K + 1):
        add(_strip(chain[k], chain[k + 1], qcols, g.u, C), MOUTH_INTERIOR)
    faces = np.concatenate(faces).astype(np.int64)
    kinds = np.concatenate(kinds)
    keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])

    vrow = np.full(n_v, -1)
    vcol = np.full(n_v, -1)
    rr, cc = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
    vrow[ids.ravel()] = rr.ravel()
    vcol[ids.ravel()] = cc.ravel()
    vrow[lower_slit[mouth_cols]] = s
    vcol[lower_slit[mouth_cols]] = mouth_cols
    pk = np.full(n_v, -1)
    for k in range(K):
        pk[pocket[k, mouth_cols]] = k
        vcol[pocket[k, mouth_cols]] = mouth_cols
    return _Topology(ids, lower_slit, pocket, top_id, bottom_id, n_v, faces[keep], kinds[keep], vrow, vcol, pk)


def _ray_angles(g: Grid, topo: _Topology) -> tuple[np.ndarray, np.ndarray]:
    """[V] azimuth/elevation of every vertex's ray (meaningless for pocket vertices)."""
    u = g.u[np.maximum(topo.vertex_col, 0)]
    v = g.v[np.maximum(topo.vertex_row, 0), np.maximum(topo.vertex_col, 0)]
    u[[topo.top, topo.bottom]] = 0.0
    v[topo.top], v[topo.bottom] = np.pi / 2, -np.pi / 2
    return u, v


def _pocket_offsets(g: Grid, topo: _Topology) -> np.ndarray:
    """[V, 3] offset of each pocket vertex from its slit vertex (0 elsewhere)."""
    alm = g.bands["mouth"][0]
    off = np.zeros((topo.n_vertices, 3))
    pv = np.flatnonzero(topo.pocket_k >= 0)
    prof = np.array([p[:2] for p in POCKET_PROFILE])[topo.pocket_k[pv]]  # [P, 2] (dy, dz)
    taper = (1.0 - alm.s(g.u[topo.vertex_col[pv]]) ** 2).clip(0.0) ** 0.35
    off[pv, 1] = prof[:, 0] * taper
    off[pv, 2] = prof[:, 1] * (0.55 + 0.45 * taper)
    return off


def _surface(g: Grid, topo: _Topology, shape: ShapeParams, near: np.ndarray | None = None,
             base: ShapeParams | None = None):
    """Vertex positions [V, 3] float64 and ray distances [V] for shape parameters (near/base: see
    :func:`project_rays`)."""
    u, v = _ray_angles(g, topo)
    dirs = ray_directions(u, v)
    on_ray = topo.pocket_k < 0
    t = np.zeros(topo.n_vertices)
    t[on_ray] = project_rays(dirs[on_ray], shape, near=None if near is None else near[on_ray], base=base)
    pos = RAY_CENTRE + t[:, None] * dirs
    # pocket vertices hang from their slit (upper edge) vertex
    pv = np.flatnonzero(~on_ray)
    slit_of = topo.grid_ids[g.slit_row, topo.vertex_col[pv]]
    pos[pv] = pos[slit_of]
    return pos, t


def _squeeze_pocket(pos: np.ndarray, topo: _Topology, off: np.ndarray) -> np.ndarray:
    """Add the pocket profile and narrow the cavity towards the throat."""
    out = pos + off
    pv = topo.pocket_k >= 0
    depth = np.clip(-off[:, 2] / 0.05, 0.0, 1.0)
    out[pv, 0] *= 1.0 - 0.3 * depth[pv]
    return out


def _eye_bands(g: Grid, topo: _Topology) -> tuple[dict, dict]:
    """Per eye: band vertex ids per interior column [n, k] (upper lid → lower lid) and the ids of
    the three skin rows above the band [3, n]."""
    eye_columns, lid_rows = {}, {}
    for name in ("eye_L", "eye_R"):
        _, keys, c0, c1 = g.bands[name]
        cols = np.arange(c0 + 1, c1)
        eye_columns[name] = topo.grid_ids[keys[0] : keys[-1] + 1, cols].T.copy()
        lid_rows[name] = topo.grid_ids[keys[0] - 3 : keys[0], cols].copy()
    return eye_columns, lid_rows


def _identity_basis(g: Grid, topo: _Topology, shape: ShapeParams, base: np.ndarray, t0: np.ndarray) -> np.ndarray:
    """[Ki, V, 3] identity modes: the same rays against perturbed shapes (the pocket follows its
    slit); a quarter step keeps the difference linear, scaled back to one unit."""
    out = np.empty((len(IDENTITY_MODES), topo.n_vertices, 3))
    for i, deltas in enumerate(IDENTITY_MODES.values()):
        pos, _ = _surface(g, topo, shape.perturbed(**{k: d / 4 for k, d in deltas.items()}), near=t0, base=shape)
        out[i] = (pos - base) * 4
    return out


def _mouth(g: Grid, topo: _Topology, pocket_off: np.ndarray) -> dict:
    """Mouth bookkeeping: upper/lower side (+1/−1) and jaw weight of the mouth vertices,
    pocket parameter t (cumulative profile length, 0 at the upper edge, 1 at the lower edge),
    pocket depth and the t at which each profile stretch starts."""
    _, m_keys, mc0, mc1 = g.bands["mouth"]
    cols = np.arange(mc0 + 1, mc1)
    s, n_v = g.slit_row, topo.n_vertices
    slit = np.stack([topo.grid_ids[s, cols], topo.lower_slit[cols]], 1)
    side = np.zeros(n_v, np.int8)
    jaw = np.zeros(n_v, np.float32)
    side[topo.grid_ids[m_keys[0] + 1 : s + 1, cols].ravel()] = 1
    lower = np.concatenate([topo.grid_ids[s + 1 : m_keys[2], cols].ravel(), slit[:, 1]])
    side[lower], jaw[lower] = -1, 1.0
    prof = np.array([(0.0, 0.0)] + [p[:2] for p in POCKET_PROFILE] + [(0.0, 0.0)])
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(prof, axis=0), axis=1))])
    arc /= arc[-1]
    t = np.full(n_v, -1.0, np.float32)
    depth = np.zeros(n_v, np.float32)
    for k in range(len(POCKET_PROFILE)):
        vk = topo.pocket_ids[k, cols]
        side[vk] = 1 if POCKET_JAW[k] < 0.5 else -1
        jaw[vk] = POCKET_JAW[k]
        t[vk] = arc[k + 1]
        depth[vk] = -pocket_off[vk, 2]
    t[slit[:, 0]], t[slit[:, 1]] = 0.0, 1.0
    t[topo.grid_ids[s, [mc0, mc1]]] = 0.0  # the mouth corners
    corners = topo.grid_ids[s, [mc1, mc0]]  # left (+x), right
    return dict(mouth_side=side, jaw_side=jaw, pocket_t=t, pocket_depth=depth,
                pocket_breaks=arc.astype(np.float32), corners=corners)


@functools.lru_cache(maxsize=1)
def build_synth_head() -> SynthHead:
    """Build the procedural head and its bookkeeping (cached; deterministic)."""
    g = build_grid()
    topo = _topology(g)
    shape = ShapeParams()
    base, t0 = _surface(g, topo, shape)
    pocket_off = _pocket_offsets(g, topo)
    template = _squeeze_pocket(base, topo, pocket_off)
    faces = topo.faces
    # orient triangles outwards (normals away from the ray centre on the grid part)
    fn = np.cross(template[faces[:, 1]] - template[faces[:, 0]], template[faces[:, 2]] - template[faces[:, 0]])
    out = np.einsum("ti,ti->t", fn, template[faces].mean(1) - RAY_CENTRE)
    if np.sum(out[topo.face_kind != MOUTH_INTERIOR]) < 0:
        faces = faces[:, ::-1].copy()
    eye_columns, lid_rows = _eye_bands(g, topo)
    id_basis = _identity_basis(g, topo, shape, base, t0)
    _rigid_eye_bands(id_basis, eye_columns)
    mouth = _mouth(g, topo, pocket_off)
    lm = {
        "eye_L": template[eye_columns["eye_L"]].reshape(-1, 3).mean(0),
        "eye_R": template[eye_columns["eye_R"]].reshape(-1, 3).mean(0),
        "mouth": template[topo.grid_ids[g.slit_row, int(np.argmin(np.abs(g.u)))]],
        "mouth_corner_L": template[mouth["corners"][0]],
        "mouth_corner_R": template[mouth["corners"][1]],
        "nose_tip": template[np.argmax(np.where(topo.pocket_k < 0, template[:, 2], -1.0))],
    }
    lm = {k: np.asarray(v, np.float32) for k, v in lm.items()}
    names, exp_basis = build_expression_basis(template, faces, lm, mouth["mouth_side"], mouth["jaw_side"],
                                              eye_columns, lid_rows)
    _rigid_eye_bands(exp_basis, eye_columns, skip=[names.index("eyeBlink_L"), names.index("eyeBlink_R")])
    model = FaceModel(
        name=MODEL_NAME, vertices=template.astype(np.float32), faces=faces.astype(np.int32),
        identity_basis=id_basis.astype(np.float32), identity_names=list(IDENTITY_MODES),
        expression_basis=exp_basis.astype(np.float32), expression_names=names,
        vertex_regions=np.zeros(topo.n_vertices, np.uint8),
    )
    head = SynthHead(
        model=model, face_kind=topo.face_kind, pocket_t=mouth["pocket_t"], pocket_breaks=mouth["pocket_breaks"],
        pocket_materials=("lip",) + tuple(p[2] for p in POCKET_PROFILE), pocket_depth=mouth["pocket_depth"],
        landmarks=lm,
    )
    model.vertex_regions = vertex_regions(head)
    return head


def _rigid_eye_bands(basis: np.ndarray, eye_columns: dict[str, np.ndarray], skip=()) -> None:
    """Give every vertex of an eye band the offset of the lower-lid vertex of its column (in place),
    so the band collapses exactly onto the lower lid under any identity and expression."""
    keep = [i for i in range(basis.shape[0]) if i not in set(skip)]
    for cols in eye_columns.values():
        basis[np.ix_(keep, cols[:, :-1].ravel())] = np.repeat(basis[keep][:, cols[:, -1]], cols.shape[1] - 1, axis=1)


def build_head_model() -> FaceModel:
    """The procedural head model ``fastminerf-synth-head-v1`` (deterministic, cached)."""
    return build_synth_head().model
