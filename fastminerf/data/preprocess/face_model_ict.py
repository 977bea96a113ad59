"""ICT-FaceKit (MIT) as a :class:`~fastminerf.data.face_model.FaceModel`.

Reads the original repository layout (``FaceXModel/generic_neutral_mesh.obj``,
``identity000..099.obj``, 53 ARKit-named expression meshes, ``vertex_indices.json``) or the
``.tar.xz`` archive of it, keeps the parts a head avatar needs, triangulates the quads,
converts centimetres to metres and caches the result as one compact ``.npz`` under
``~/.cache/fastminerf/`` (key: a hash of the folder's file names and sizes), so later loads
take well under a second.

Kept parts (ICT vertex ranges, README "Face Model Topology"):
    face [0, 9409), head and neck [9409, 11248)   the skin surface
    mouth socket [11248, 13294)                    closed bag behind the lips: gives samples
                                                   in an open mouth a triangle that follows
                                                   the jaw (region 140, mouth interior)
    eyeballs (sclera + iris) [21451, 24591)        as INSTA/FLAME keep them (region 210);
                                                   they carry the gaze (eyeLook* shapes)
Dropped: eye sockets (hidden behind the eyeballs), gums/tongue and 32 separate teeth (small
disconnected shells with tiny triangles at a generic position a landmark fit cannot place;
they would capture nearest-triangle queries inside the mouth), lacrimal fluid, eye blend /
occlusion shells and eyelash strips (thin transparent cards).

Head space: metres, +y up, +z out of the face, +x towards the person's left ear (ICT's own
axes, already right-handed with these directions).
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ...errors import InputError
from ..face_model import FaceModel
from .regions import ict_regions

NAME = "ict-facekit"
ENV_VAR = "FASTMINERF_FACE_MODEL"
CACHE_VERSION = 2
#: [start, stop) ICT vertex ranges kept, with their default region id (refined by :func:`ict_regions`)
KEPT_RANGES: tuple[tuple[int, int, str], ...] = (
    (0, 9409, "face"),
    (9409, 11248, "head_neck"),
    (11248, 13294, "mouth_socket"),
    (21451, 24591, "eyeballs"),
)
N_ICT_VERTICES = 26719
#: Multi-PIE 68 landmark vertex indices of the full ICT mesh (ICT README, "Facial Landmarks")
ICT_LANDMARKS_68 = np.array([
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725,
    3732, 5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533,
    6216, 6207, 6470, 5517, 5966], np.int64)


def kept_vertex_ids() -> np.ndarray:
    """[V] int64 ICT vertex indices kept, in order (new index i ↔ ICT index kept[i])."""
    return np.concatenate([np.arange(a, b) for a, b, _ in KEPT_RANGES])


def ict_to_kept() -> np.ndarray:
    """[26719] int64 map from full-ICT vertex index to kept index (-1 where dropped)."""
    m = np.full(N_ICT_VERTICES, -1, np.int64)
    kept = kept_vertex_ids()
    m[kept] = np.arange(kept.size)
    return m


def resolve_path(path: str | Path | None) -> Path:
    """The ICT-FaceKit location from ``path`` or ``$FASTMINERF_FACE_MODEL``.

    Accepts the folder that contains ``FaceXModel/``, ``FaceXModel/`` itself, or the
    ``.tar.xz`` archive. Raises InputError naming the path when it is missing or wrong.
    """
    if path is None:
        path = os.environ.get(ENV_VAR)
        if not path:
            raise InputError(None, f"no face model given: pass --face-model PATH (ICT-FaceKit folder or .tar.xz) or set {ENV_VAR}")
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(p, "face model path not found (expected the ICT-FaceKit folder containing FaceXModel/, or its .tar.xz)")
    if p.is_file():
        if not p.name.endswith((".tar.xz", ".tar", ".tar.gz", ".tgz")):
            raise InputError(p, "face model file is not an ICT-FaceKit archive (.tar.xz)")
        return p
    if (p / "FaceXModel" / "generic_neutral_mesh.obj").is_file():
        return p / "FaceXModel"
    if (p / "generic_neutral_mesh.obj").is_file():
        return p
    raise InputError(p, "not an ICT-FaceKit folder (no FaceXModel/generic_neutral_mesh.obj)")


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fastminerf`` (default ``~/.cache/fastminerf``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fastminerf"


def _source_key(src: Path) -> str:
    """Hash of the source's file names and sizes (an archive: its name, size and mtime)."""
    h = hashlib.sha1(f"ict-v{CACHE_VERSION}".encode())
    if src.is_file():
        st = src.stat()
        h.update(f"{src.resolve()}|{st.st_size}|{int(st.st_mtime)}".encode())
    else:
        for f in sorted(src.glob("*.obj")) + [src / "vertex_indices.json"]:
            if f.is_file():
                h.update(f"{f.name}|{f.stat().st_size}".encode())
    return h.hexdigest()[:16]


def load_ict(path: str | Path | None = None, cache: Path | None = None) -> FaceModel:
    """Load ICT-FaceKit as a FaceModel, through the ``.npz`` cache.

    Args:
        path: ICT folder / FaceXModel folder / .tar.xz (None: ``$FASTMINERF_FACE_MODEL``).
        cache: cache folder (default :func:`cache_dir`).
    Returns:
        FaceModel with V = 16,434 vertices, T = 32,444 triangles, 100 identity modes,
        53 expressions (ICT names, ARKit with ``_L``/``_R``), INSTA region ids and the 68
        landmarks (kept-vertex indices).
    """
    src = resolve_path(path)
    cache = Path(cache) if cache is not None else cache_dir()
    npz = cache / f"ict-facekit-{_source_key(src)}.npz"
    if npz.is_file():
        try:
            return FaceModel.load(npz)
        except InputError:
            npz.unlink(missing_ok=True)  # corrupt cache: rebuild below
    if src.is_file():
        with tempfile.TemporaryDirectory(prefix="fastminerf-ict-") as tmp:
            _unpack(src, Path(tmp))
            model = read_ict_folder(resolve_path(tmp))
    else:
        model = read_ict_folder(src)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        model.save(npz)
    except OSError:
        pass  # read-only home: keep it in memory only
    return model


def _unpack(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and "FaceXModel/" in m.name
                       and m.name.endswith((".obj", ".json")) and ".." not in m.name]
            if not members:
                raise InputError(archive, "archive holds no FaceXModel/*.obj")
            tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise InputError(archive, f"unreadable ICT-FaceKit archive ({e})") from None


def read_obj_vertices(path: Path, n: int = N_ICT_VERTICES) -> np.ndarray:
    """[n, 3] float64 positions of the ``v`` lines of an ICT OBJ (fast path: one block)."""
    if not path.is_file():
        raise InputError(path, "ICT-FaceKit mesh missing")
    data = path.read_bytes()
    start = data.find(b"\nv ")
    stop = data.find(b"\nvt ", start)
    if start < 0:
        raise InputError(path, "no vertices in OBJ")
    block = data[start:stop if stop > 0 else None]
    arr = np.array(block.replace(b"v", b" ").split(), dtype=np.float64)
    if arr.size != 3 * n:
        raise InputError(path, f"expected {n} vertices, found {arr.size / 3:g} (not the ICT-FaceKit topology)")
    return arr.reshape(n, 3)


def read_obj_polygons(path: Path) -> list[list[int]]:
    """0-based vertex indices of every ``f`` line (quads and triangles), in file order."""
    polys = []
    for line in path.read_text().splitlines():
        if line.startswith("f "):
            polys.append([int(tok.split("/")[0]) - 1 for tok in line.split()[1:]])
    return polys


def triangulate(polys: list[list[int]]) -> np.ndarray:
    """Fan-triangulate polygons: [T, 3] int64 (a quad abcd → abc, acd; winding kept)."""
    tris = [(p[0], p[k], p[k + 1]) for p in polys for k in range(1, len(p) - 1)]
    return np.asarray(tris, np.int64)


def read_ict_folder(folder: Path) -> FaceModel:
    """Read FaceXModel/ (uncached) into a FaceModel with the kept parts (see module doc)."""
    folder = Path(folder)
    meta_p = folder / "vertex_indices.json"
    if not meta_p.is_file():
        raise InputError(meta_p, "ICT-FaceKit vertex_indices.json missing")
    names = list(json.loads(meta_p.read_text())["expressions"])
    neutral = read_obj_vertices(folder / "generic_neutral_mesh.obj")
    id_files = sorted(folder.glob("identity[0-9][0-9][0-9].obj"))
    if not id_files:
        raise InputError(folder, "no identityNNN.obj files")
    kept = kept_vertex_ids()
    to_kept = ict_to_kept()
    scale = 0.01  # cm → m
    ident = np.stack([(read_obj_vertices(f) - neutral)[kept] for f in id_files]) * scale
    expr = np.stack([(read_obj_vertices(folder / f"{n}.obj") - neutral)[kept] for n in names]) * scale
    tris = triangulate(read_obj_polygons(folder / "generic_neutral_mesh.obj"))
    tk = to_kept[tris]
    faces = tk[(tk >= 0).all(1)].astype(np.int32)
    verts = (neutral[kept] * scale).astype(np.float32)
    lm = to_kept[ICT_LANDMARKS_68]
    return FaceModel(
        name=NAME,
        vertices=verts,
        faces=faces,
        identity_basis=ident.astype(np.float32),
        identity_names=[f.stem for f in id_files],
        expression_basis=expr.astype(np.float32),
        expression_names=names,
        vertex_regions=ict_regions(verts, lm, part_of_vertex()),
        landmarks=lm,
    )


def part_of_vertex() -> np.ndarray:
    """[V] names of the kept part each kept vertex comes from (see :data:`KEPT_RANGES`)."""
    return np.concatenate([np.full(b - a, name, dtype=object) for a, b, name in KEPT_RANGES])

