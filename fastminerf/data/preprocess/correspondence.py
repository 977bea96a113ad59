"""MediaPipe face-mesh landmark ↔ ICT-FaceKit vertex correspondence (a frozen table).

``mediapipe_ict.json`` (shipped beside this module) gives, for each of MediaPipe's 478
landmarks, one vertex of the full ICT mesh (26,719-vertex numbering) and a fitting weight:
1 for landmarks on fixed facial features, lower for the face-oval (silhouette) landmarks
whose surface point slides with head rotation, 0 for the 10 iris landmarks (ICT's
eyeballs do not rotate with the expression shapes). How it was derived is written in the
file and in :mod:`fastminerf.data.preprocess.derive_correspondence`, which rebuilds it.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...files import write_text
from .face_model_ict import ict_to_kept
from .tracking import import_mediapipe

TABLE_PATH = Path(__file__).with_name("mediapipe_ict.json")
N_LANDMARKS = 478
#: MediaPipe landmark ids ↔ Multi-PIE 68 ids used as anchors (same facial feature)
ANCHORS_MP_TO_68: dict[int, int] = {
    1: 30, 168: 27, 2: 33, 33: 36, 133: 39, 362: 42, 263: 45, 61: 48, 291: 54,
    0: 51, 17: 57, 13: 62, 14: 66, 152: 8,
}


def load_table(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read the table.

    Returns:
        ict_vertex: [478] int64 full-ICT vertex index per MediaPipe landmark.
        weight: [478] float32 fitting weight (0 = not used).
    """
    path = Path(path or TABLE_PATH)
    try:
        d = json.loads(path.read_text())
        v = np.asarray(d["ict_vertex"], np.int64)
        w = np.asarray(d["weight"], np.float32)
    except (OSError, KeyError, ValueError) as e:
        raise InputError(path, f"unreadable correspondence table ({e})") from None
    if v.shape != (N_LANDMARKS,) or w.shape != (N_LANDMARKS,):
        raise InputError(path, f"expected {N_LANDMARKS} entries, got {v.shape} / {w.shape}")
    return v, w


def kept_table(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Like :func:`load_table` with vertices in the kept-model numbering ([478] int64)."""
    v, w = load_table(path)
    k = ict_to_kept()[v]
    if (k < 0).any():
        raise InputError(path or TABLE_PATH, "table names ICT vertices outside the kept parts")
    return k, w


def save_table(ict_vertex: np.ndarray, weight: np.ndarray, notes: dict, path: Path | None = None) -> None:
    """Write the table (temp file, then rename)."""
    path = Path(path or TABLE_PATH)
    head = json.dumps(notes, indent=1)[:-2]  # notes, then the two arrays on one line each
    text = (f"{head},\n \"ict_vertex\": {json.dumps([int(x) for x in ict_vertex])},\n"
            f" \"weight\": {json.dumps([round(float(x), 3) for x in weight])}\n}}\n")
    write_text(path, text)


def mediapipe_canonical(task_path: str | Path) -> np.ndarray:
    """[468, 3] MediaPipe's canonical face mesh (cm, +y up, +z out of the face), read from
    the geometry metadata inside ``face_landmarker.task``."""
    import_mediapipe()
    from mediapipe.tasks.cc.vision.face_geometry.proto import geometry_pipeline_metadata_pb2 as gp

    with zipfile.ZipFile(task_path) as z:
        meta = gp.GeometryPipelineMetadata()
        meta.ParseFromString(z.read("geometry_pipeline_metadata_landmarks.binarypb"))
    vb = np.asarray(meta.canonical_mesh.vertex_buffer, np.float64).reshape(-1, 5)  # x y z u v
    return vb[:, :3]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R [3, 3], t [3]) minimising Σ||s R src + t − dst||², src/dst [N, 3]."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    U, S, Vt = np.linalg.svd(b.T @ a / len(src))
    D = np.eye(3)
    D[2, 2] = np.sign(np.linalg.det(U @ Vt))
    R = U @ D @ Vt
    s = float(np.trace(np.diag(S) @ D) / (a * a).sum(1).mean())
    return s, R, md - s * R @ ms
