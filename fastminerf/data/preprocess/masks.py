"""Head mask: MediaPipe selfie segmentation restricted to head and neck → alpha matte.

Per frame (output-crop pixels): the person matte from selfie segmentation, restricted to
the head and a neck-wide band below the jaw (in the face's own frame: up = chin → forehead),
cut ``neck`` face heights under the chin (shoulders and clothes go), united with the convex hull of the face landmarks (the face is always
kept), cleaned (opening, largest connected component, holes filled); the soft matte is kept
at the edge, the inside is opaque.
"""
from __future__ import annotations

import numpy as np

from .tracking import import_cv2, import_mediapipe


class HeadMatte:
    """Stateful segmenter (one MediaPipe graph for the clip); use as a context manager."""

    def __init__(self, neck: float = 0.25):
        mp = import_mediapipe()
        self.seg = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)
        self.neck = neck

    def __enter__(self) -> HeadMatte:
        return self

    def __exit__(self, *exc) -> None:
        self.seg.close()

    def __call__(self, image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """image [S, S, 3] uint8 RGB crop, landmarks [478, 2] crop pixels → [S, S] uint8 alpha."""
        conf = self.seg.process(image).segmentation_mask  # [S, S] float32 in [0, 1]
        return head_alpha(conf, landmarks, self.neck)


def head_alpha(conf: np.ndarray, landmarks: np.ndarray, neck: float = 0.25, neck_width: float = 0.3,
               jaw: float = 0.2) -> np.ndarray:
    """Person confidence [H, W] float + landmarks [478, 2] → head-and-neck alpha [H, W] uint8.

    Lengths in face heights (forehead–chin): above ``jaw`` (over the chin) the head, up to
    0.42 face heights from the face axis up to cheek level (0.45), wider above (hair); below it only a
    band of half-width ``neck_width`` around the axis, down to ``neck`` under the chin.
    """
    cv2 = import_cv2()

    H, W = conf.shape
    lm = landmarks[:, :2].astype(np.float32)
    chin, top = lm[152], lm[10]
    up = top - chin
    fh = float(np.linalg.norm(up)) + 1e-6
    up /= fh
    right = np.array([-up[1], up[0]], np.float32)
    yy, xx = np.mgrid[:H, :W].astype(np.float32)
    dx, dy = xx + 0.5 - chin[0], yy + 0.5 - chin[1]
    h = (dx * up[0] + dy * up[1]) / fh           # face heights above the chin
    s = np.abs(dx * right[0] + dy * right[1]) / fh  # face heights from the face's vertical axis
    ramp = lambda d: np.clip(d * fh / 2.0 + 0.5, 0, 1)  # ~2 px soft edge
    # above the jaw: hair too, within a width that grows with height (shoulders raised to jaw
    # level stay out); between the jaw and the cut: a neck-wide band only
    head = np.minimum(ramp(h - jaw), ramp(0.42 + 3.0 * np.maximum(h - 0.45, 0.0) - s))
    keep = np.maximum(head, np.minimum(ramp(h + neck), ramp(neck_width - s)))
    hull = np.zeros((H, W), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.round(lm * 4).astype(np.int32)), 1, shift=2)
    binary = ((conf > 0.5) & (keep > 0.5)) | (hull > 0)
    k = max(3, int(round(0.01 * fh)) | 1)
    binary = cv2.morphologyEx(binary.astype(np.uint8), cv2.MORPH_OPEN, np.ones((k, k), np.uint8))
    n, lab, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=4)
    if n > 1:
        binary = (lab == 1 + np.argmax(stats[1:, cv2.CC_STAT_AREA])).astype(np.uint8)
    binary = _fill_holes(binary)
    inner = cv2.erode(binary, np.ones((5, 5), np.uint8))
    outer = cv2.dilate(binary, np.ones((3, 3), np.uint8))
    alpha = np.where(inner > 0, 1.0, np.clip(conf, 0, 1) * outer) * keep
    alpha = np.maximum(alpha, hull.astype(np.float32))
    return np.round(alpha * 255).astype(np.uint8)


def _fill_holes(binary: np.ndarray) -> np.ndarray:
    """Fill background regions not connected to the image border ([H, W] uint8 0/1)."""
    cv2 = import_cv2()

    H, W = binary.shape
    pad = np.zeros((H + 2, W + 2), np.uint8)
    pad[1:-1, 1:-1] = binary
    flood = pad.copy()
    cv2.floodFill(flood, np.zeros((H + 4, W + 4), np.uint8), (0, 0), 1)
    holes = (flood == 0)[1:-1, 1:-1]
    return (binary | holes).astype(np.uint8)
