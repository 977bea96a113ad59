"""Per-frame face tracking with MediaPipe 0.10.21 (offline: bundled or given models).

Two trackers, same output:
  * the legacy Face Mesh solution bundled in the mediapipe 0.10.21 wheel (468 + 10 iris
    landmarks, ``refine_landmarks=True``);
  * the Tasks ``FaceLandmarker`` when a ``face_landmarker.task`` file is given: the same 478
    landmarks plus 52 ARKit blendshape scores and a 4×4 facial transformation matrix.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...extras import require

N_LANDMARKS = 478
EXTRA = "preprocess"


def import_mediapipe():
    """``mediapipe`` or an ImportError naming the extra to install (its C++ logging muted)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return require("mediapipe", EXTRA, "fastminerf preprocess (MediaPipe 0.10.21)")


def import_cv2():
    """OpenCV (the ``preprocess`` extra), or one line naming it."""
    return require("cv2", EXTRA, "fastminerf preprocess (OpenCV)")


@dataclass
class Tracks:
    """MediaPipe results for a clip of F frames.

    Attributes:
        landmarks: [F, 478, 3] float32; x, y in source-image pixels (pixel-centre
            convention: the centre of the top-left pixel is (0.5, 0.5)), z MediaPipe's
            relative depth scaled like x. NaN where no face was found.
        found: [F] bool, a face was found in the frame.
        scores: optional [F, 52] float32 blendshape scores (``score_names``), NaN when not found.
        score_names: the 52 MediaPipe names (``_neutral``, ``browDownLeft``, …) or [].
        transforms: optional [F, 4, 4] float32 facial transformation matrices (cm, canonical
            face → camera with OpenGL axes), NaN when not found.
    """

    landmarks: np.ndarray
    found: np.ndarray
    scores: np.ndarray | None = None
    score_names: list[str] | None = None
    transforms: np.ndarray | None = None


def track(frames: Iterable[np.ndarray], n_frames: int, fps: float, landmarker: str | Path | None = None) -> Tracks:
    """Run the tracker over frames ([H, W, 3] uint8 RGB each) in video mode."""
    mp = import_mediapipe()
    lms = np.full((n_frames, N_LANDMARKS, 3), np.nan, np.float32)
    found = np.zeros(n_frames, bool)
    if landmarker is None:
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=True,
                                             min_detection_confidence=0.5, min_tracking_confidence=0.5) as fm:
            for i, img in enumerate(frames):
                res = fm.process(img)
                if res.multi_face_landmarks:
                    lms[i] = _to_pixels(res.multi_face_landmarks[0].landmark, img.shape)
                    found[i] = True
        return Tracks(lms, found)

    path = Path(landmarker)
    if not path.is_file():
        raise InputError(path, "face landmarker model (.task) not found")
    vision = mp.tasks.vision
    opts = vision.FaceLandmarkerOptions(
        base_options=mp.tasks.BaseOptions(model_asset_path=str(path)),
        running_mode=vision.RunningMode.VIDEO, num_faces=1,
        output_face_blendshapes=True, output_facial_transformation_matrixes=True)
    scores = np.full((n_frames, 52), np.nan, np.float32)
    mats = np.full((n_frames, 4, 4), np.nan, np.float32)
    names: list[str] = []
    try:
        det = vision.FaceLandmarker.create_from_options(opts)
    except (RuntimeError, ValueError) as e:
        raise InputError(path, f"not a MediaPipe face landmarker model ({str(e)[:120]})") from None
    with det:
        for i, img in enumerate(frames):
            res = det.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)),
                                       int(round(i * 1000.0 / fps)))
            if not res.face_landmarks:
                continue
            lms[i] = _to_pixels(res.face_landmarks[0], img.shape)
            found[i] = True
            if res.face_blendshapes:
                cats = res.face_blendshapes[0]
                names = names or [c.category_name for c in cats]
                scores[i] = [c.score for c in cats]
            if res.facial_transformation_matrixes:
                mats[i] = np.asarray(res.facial_transformation_matrixes[0], np.float32)
    return Tracks(lms, found, scores, names, mats)


def _to_pixels(landmarks, shape) -> np.ndarray:
    """MediaPipe normalised landmarks → [478, 3] pixels (z scaled by the image width)."""
    H, W = shape[:2]
    a = np.array([(p.x, p.y, p.z) for p in landmarks], np.float32)[:N_LANDMARKS]
    return a * np.array([W, H, W], np.float32)


def fill_missing(x: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Linear interpolation over frames without a face (edges: nearest found frame).

    x: [F, ...] float array; found: [F] bool (at least one True). Returns a copy.
    """
    if found.all():
        return x.copy()
    idx = np.flatnonzero(found)
    flat = x.reshape(len(x), -1)
    out = np.empty_like(flat)
    t = np.arange(len(x))
    for j in range(flat.shape[1]):
        out[:, j] = np.interp(t, idx, flat[idx, j])
    return out.reshape(x.shape)


def ict_name(mediapipe_name: str) -> list[str]:
    """ICT expression names for one MediaPipe/ARKit blendshape name.

    ``eyeBlinkLeft`` → ``eyeBlink_L``; ``browInnerUp`` and ``cheekPuff`` (one ARKit shape)
    → both ICT halves; ``_neutral`` → none.
    """
    if mediapipe_name == "_neutral":
        return []
    if mediapipe_name in ("browInnerUp", "cheekPuff"):
        return [mediapipe_name + "_L", mediapipe_name + "_R"]
    for side, suf in (("Left", "_L"), ("Right", "_R")):
        if mediapipe_name.endswith(side):
            return [mediapipe_name[: -len(side)] + suf]
    return [mediapipe_name]


def scores_to_ict(scores: np.ndarray, names: list[str], ict_names: list[str]) -> np.ndarray:
    """MediaPipe scores [F, 52] → [F, len(ict_names)] in ICT order (0 where unmapped)."""
    out = np.zeros((scores.shape[0], len(ict_names)), np.float32)
    pos = {n: i for i, n in enumerate(ict_names)}
    for j, n in enumerate(names):
        for m in ict_name(n):
            if m in pos:
                out[:, pos[m]] = scores[:, j]
    return out
