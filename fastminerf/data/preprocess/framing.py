"""One square, head-centred crop box for the whole clip, and the crop's intrinsics.

One fixed box (not a tracked one) keeps the intrinsics identical for every frame, so the
camera stays a single static pinhole (camera = world, identity camera-to-world) and head
motion stays in the head pose, where the fit put it. The box covers the union of the face
over the clip plus a margin of one face height (hair, neck), is shifted up a little for the
hair, and is kept inside the frame (never padded: padding invents pixels); when the wanted
box is larger than the frame the largest square that fits is used.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .tracking import import_cv2


@dataclass
class CropBox:
    """Square box in source pixels: top-left (x0, y0), side, and the output size."""

    x0: int
    y0: int
    side: int
    size: int

    @property
    def scale(self) -> float:
        return self.size / self.side

    def intrinsics(self, focal: float, principal: tuple[float, float]) -> tuple[float, float, float, float]:
        """(fx, fy, cx, cy) of the output crop from the source focal and principal point."""
        s = self.scale
        return focal * s, focal * s, (principal[0] - self.x0) * s, (principal[1] - self.y0) * s

    def points(self, uv: np.ndarray) -> np.ndarray:
        """Source pixels [..., 2] → output-crop pixels [..., 2] (continuous coordinates)."""
        return (uv - np.array([self.x0, self.y0], np.float32)) * self.scale

    def apply(self, image: np.ndarray) -> np.ndarray:
        """[H, W, C] source → [size, size, C] crop (area filter when shrinking)."""
        cv2 = import_cv2()

        crop = image[self.y0:self.y0 + self.side, self.x0:self.x0 + self.side]
        interp = cv2.INTER_AREA if self.side > self.size else cv2.INTER_CUBIC
        return cv2.resize(crop, (self.size, self.size), interpolation=interp)


def face_height(landmarks: np.ndarray) -> np.ndarray:
    """[F] pixel distance from forehead (MediaPipe 10) to chin (152); landmarks [F, 478, 2]."""
    return np.linalg.norm(landmarks[:, 10, :2] - landmarks[:, 152, :2], axis=-1)


def crop_box(landmarks: np.ndarray, valid: np.ndarray, width: int, height: int, size: int = 512,
             margin: float = 1.0, lift: float = 0.12) -> CropBox:
    """The clip's crop box.

    Args:
        landmarks: [F, 478, 2] source pixels. valid: [F] bool.
        width, height: source frame size. size: output side in pixels.
        margin: extra side length in face heights; lift: upward shift in face heights.
    """
    lm = landmarks[valid, :, :2]
    lo = np.percentile(lm.min(1), 2, axis=0)   # [2] robust union of per-frame boxes
    hi = np.percentile(lm.max(1), 98, axis=0)
    fh = float(np.median(face_height(landmarks[valid])))
    side = int(round(max(hi - lo) + margin * fh))
    side = max(16, min(side, width, height))
    cx, cy = (lo + hi) / 2.0
    cy -= lift * fh
    x0 = int(round(np.clip(cx - side / 2, 0, width - side)))
    y0 = int(round(np.clip(cy - side / 2, 0, height - side)))
    return CropBox(x0, y0, side, int(size))
