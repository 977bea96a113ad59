"""Rebuild ``mediapipe_ict.json`` (developer tool; the shipped table is its output).

    python -m fastminerf.data.preprocess.derive_correspondence --face-model ICT \
        --landmarker face_landmarker.task VIDEO [VIDEO ...]

Step 1 (geometry): MediaPipe's canonical face mesh (468 points, from the .task file) is
aligned to the ICT neutral head by a similarity transform on 14 anchor features (nose tip,
eye and mouth corners, lip midpoints, chin; :data:`ANCHORS_MP_TO_68` ↔ ICT's 68 landmark
vertices), then a few rounds of non-rigid ICP fit ICT's identity modes to it; every
MediaPipe point takes its closest ICT face vertex. Iris centres (468, 473) take the front
pole of each iris (weight 0).
Step 2 (data): every video is tracked and fitted with the current table; then, for each
landmark, the ICT face vertex within 8 mm of its current vertex (on the neutral head) whose
projection best matches that landmark over all frames of all clips (summed robust error)
becomes its vertex. Fit and re-pick alternate (``--rounds``). Using several people and
expressions (open mouths) keeps the choice from fitting one face.
Weights: 1; face-oval (silhouette) landmarks 0.5; iris landmarks 0.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from .correspondence import ANCHORS_MP_TO_68, N_LANDMARKS, TABLE_PATH, mediapipe_canonical, save_table, umeyama
from .face_model_ict import ICT_LANDMARKS_68, ict_to_kept, kept_vertex_ids, load_ict
from .pipeline import fit_tracked, track_clip

FACE_OVAL = sorted({10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109})
IRIS = list(range(468, 478))
N_FACE = 9409  # ICT face part: vertices [0, 9409)


def weights() -> np.ndarray:
    """[478] float32 fitting weights (see module doc)."""
    w = np.ones(N_LANDMARKS, np.float32)
    w[FACE_OVAL] = 0.5
    w[IRIS] = 0.0
    return w


def initial_table(model, canon: np.ndarray, rounds: int = 8) -> np.ndarray:
    """Step 1: [478] full-ICT vertex ids from the canonical mesh (see module doc)."""
    kept = kept_vertex_ids()
    face = np.arange(N_FACE)  # face part (kept ids == ICT ids there)
    mp_ids = np.array(list(ANCHORS_MP_TO_68))
    ict_ids = ICT_LANDMARKS_68[[ANCHORS_MP_TO_68[i] for i in mp_ids]]
    tmpl = model.vertices.astype(np.float64) * 100.0  # cm
    B = model.identity_basis.astype(np.float64) * 100.0
    s, R, t = umeyama(canon[mp_ids], tmpl[ict_ids])
    target = s * canon @ R.T + t
    coef = np.zeros(len(B))
    for _ in range(rounds):
        head = tmpl + np.tensordot(coef, B, 1)
        _, idx = cKDTree(head[face]).query(target)
        corr = face[idx]
        # identity coefficients (ridge) for these correspondences, then re-align
        A = B[:, corr].reshape(len(B), -1).T  # [468*3, Ki]
        r = (target - tmpl[corr]).ravel()
        coef = np.linalg.solve(A.T @ A + 5.0 * np.eye(len(B)), A.T @ r)
        head = tmpl + np.tensordot(coef, B, 1)
        s, R, t = umeyama(canon, head[corr])
        target = s * canon @ R.T + t
    table = np.zeros(N_LANDMARKS, np.int64)
    table[:468] = kept[corr]
    iris_front = []
    for a, b in ((21451, 23021), (23021, 24591)):  # eyeball left, right (ICT ids)
        ids = np.arange(a, b)
        iris_front.append(ids[np.argmax(tmpl[np.searchsorted(kept, ids), 2])])
    # MediaPipe 468.. = the person's right iris (image left) = ICT right eyeball (x < 0)
    right, left = sorted(iris_front, key=lambda i: tmpl[np.searchsorted(kept, i), 0])
    table[468:473], table[473:478] = right, left
    return table


def refine(model, table: np.ndarray, clips: list, radius_cm: float = 0.8, huber: float = 0.01) -> np.ndarray:
    """Step 2, one round: re-pick each landmark's vertex from fitted clips.

    clips: list of (landmarks [F, 478, 2], valid [F], FitResult).
    """
    kept = kept_vertex_ids()
    to_k = np.searchsorted(kept, table)
    tmpl = model.vertices * 100.0
    face = np.arange(N_FACE)
    tree = cKDTree(tmpl[face])
    new = table.copy()
    cands = [face[tree.query_ball_point(tmpl[to_k[j]], radius_cm)] for j in range(468)]
    cost = [np.zeros(len(c)) for c in cands]
    for lm, valid, res in clips:
        fr = np.flatnonzero(valid)
        V = model.mesh(res.identity, res.expression[fr])  # [F', V, 3]
        cam = V @ res.rotation[fr].transpose(0, 2, 1) + res.translation[fr][:, None]
        uv = res.focal * cam[..., :2] / cam[..., 2:] + np.asarray(res.principal)
        sc = np.nanmedian(np.nanmax(lm[fr, :, 1], 1) - np.nanmin(lm[fr, :, 1], 1))
        for j in range(468):
            d2 = (((uv[:, cands[j]] - lm[fr, j][:, None, :2]) / sc) ** 2).sum(-1)  # [F', C]
            cost[j] += (huber ** 2 * (np.sqrt(1 + d2 / huber ** 2) - 1)).sum(0)
    for j in range(468):
        new[j] = kept[cands[j][np.argmin(cost[j])]]
    return new


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("videos", nargs="*")
    ap.add_argument("--face-model", required=True)
    ap.add_argument("--landmarker", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--max-frames", type=int, default=240)
    ap.add_argument("--out", default=str(TABLE_PATH))
    a = ap.parse_args(argv)
    model = load_ict(a.face_model)
    table = initial_table(model, mediapipe_canonical(a.landmarker))
    w = weights()
    notes = {"description": "MediaPipe face mesh landmark (index) -> ICT-FaceKit vertex (full 26719-vertex "
                            "numbering) and fitting weight; see fastminerf/data/preprocess/derive_correspondence.py",
             "derived_from": ["MediaPipe canonical face mesh (face_landmarker.task geometry metadata)"]
             + [Path(v).name for v in a.videos], "rounds": a.rounds}
    tracked = [track_clip(v, model, a.landmarker, a.max_frames) for v in a.videos]
    for r in range(a.rounds + 1):
        clips = []
        for v, c in zip(a.videos, tracked):
            res = fit_tracked(c, model, ict_to_kept()[table], w)
            clips.append((c.landmarks, c.valid, res))
            print(f"round {r}: {Path(v).name}: median error {np.nanmedian(res.error_px):.2f} px", flush=True)
        if r == a.rounds:
            break
        changed = table.copy()
        table = refine(model, table, clips)
        print(f"round {r}: {(changed != table).sum()} landmarks moved", flush=True)
    save_table(table, w, notes, Path(a.out))


if __name__ == "__main__":
    main()
