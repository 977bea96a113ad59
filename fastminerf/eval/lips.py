"""Landmark lip motion: MediaPipe's lip landmarks on render vs frame (the ``preprocess`` extra).

The *landmark mouth opening* of a face image is the gap between MediaPipe Face Mesh's inner
lip midpoints (landmarks 13, upper, and 14, lower) over the mouth width (corners 61 and
291): about 0 closed, 0.3–0.6 wide open, independent of image size and face scale. It is
measured the same way on the rendered and the true frames of a sequence;
``landmark_lip_motion`` is the Pearson correlation over frames of the two
(:func:`fastminerf.eval.mouth.lip_motion`; frames where either side has no face found are
dropped). Unlike the pixel measure of :mod:`fastminerf.eval.mouth` it needs no seg_mask,
so it works on any real clip.
"""
from __future__ import annotations

import numpy as np

from ..data.preprocess.tracking import track
from .mouth import lip_motion

#: Face Mesh landmark ids: inner upper lip, inner lower lip, left and right mouth corners
UPPER, LOWER, LEFT, RIGHT = 13, 14, 61, 291


def openings_of(landmarks: np.ndarray, found: np.ndarray) -> list[float | None]:
    """Per-frame mouth opening (gap / width) from landmarks [F, 478, ≥2] and found [F] bool."""
    lm = np.asarray(landmarks, np.float64)[..., :2]
    gap = np.linalg.norm(lm[:, UPPER] - lm[:, LOWER], axis=-1)
    width = np.linalg.norm(lm[:, LEFT] - lm[:, RIGHT], axis=-1)
    return [float(g / w) if ok and w > 1e-6 else None for g, w, ok in zip(gap, width, found)]


def landmark_openings(images: list[np.ndarray], fps: float = 25.0, landmarker: str | None = None) -> list[float | None]:
    """Mouth opening of each [H, W, 3] uint8 RGB image of one sequence (None where no face
    is found); MediaPipe runs in video mode over the sequence, as in preprocessing."""
    tr = track(iter(images), len(images), fps, landmarker)
    return openings_of(tr.landmarks, tr.found)


def landmark_lip_motion(rendered: list[np.ndarray], truth: list[np.ndarray], fps: float = 25.0,
                        landmarker: str | None = None) -> dict:
    """Compare a rendered sequence with its true frames ([H, W, 3] uint8 RGB each).

    Returns {"lip_motion_landmarks": correlation (None with < 3 usable frames),
    "opening_error": mean |rendered − true opening| over usable frames (None without),
    "found": frames where both sides had a face, "frames": frames given}.
    """
    r = landmark_openings(rendered, fps, landmarker)
    t = landmark_openings(truth, fps, landmarker)
    both = [(a, b) for a, b in zip(r, t) if a is not None and b is not None]
    return {"lip_motion_landmarks": lip_motion(r, t),
            "opening_error": float(np.mean([abs(a - b) for a, b in both])) if both else None,
            "found": len(both), "frames": len(rendered)}
