"""Mouth metrics: PSNR inside the mouth box and a lip-motion correlation.

The *mouth box* of a frame is the bounding box of the ground truth's lips + mouth-interior
pixels (seg_mask ids 120/130/140, :data:`fastminerf.data.regions.MOUTH_REGIONS`), grown by
``DILATE`` px on every side and clipped to the image. ``mouth_psnr`` is the PSNR of the
render against the ground truth inside that box (frames without mouth pixels or without a
seg_mask are skipped).

The *mouth opening* of an image is the number of pixels of the ground truth's lips +
mouth-interior region (seg ids 120/130/140, the same pixels for render and truth) whose
colour is farther than ``OPEN_DIST`` (RGB distance) from every colour of the ground truth's
face pixels in the mouth box that are not mouth interior (skin, lips, freckles, stripes,
dots): teeth, tongue and the dark throat, which no skin or lip pixel looks like. It is
measured the same way on the render and on the ground truth, against the truth's colours. A
frozen render stays constant (a closed mouth shows lip and skin colours in the region), and
on the ground truth the count follows the interior's own area (seg 140) with a correlation
of 0.96–1.00 per identity on our synthetic casts (benchmarks/results/mouth_metric.md; the
earlier dark-pixel count reached only 0.70–0.82: it counted dark stripes, freckles and lip
shadows). Without a seg_mask the number of pixels in the box with luminance below the
absolute ``DARK`` is used. ``lip_motion`` is the Pearson correlation over frames between
rendered and true opening; a render whose opening does not vary (a frozen mouth) scores 0.
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.regions import MOUTH_REGIONS, Region
from .metrics import psnr

#: pixels the mouth box is grown by on every side
DILATE = 3
#: luminance (0..1) below which a mouth-box pixel counts as open-mouth interior (no seg_mask)
DARK = 0.3
#: with a seg_mask: RGB distance from every truth face colour beyond which a pixel is interior
OPEN_DIST = 0.1


def mouth_box(seg: np.ndarray | None, dilate: int = DILATE) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) half-open box of the mouth regions of seg [H, W] (region ids), grown by
    ``dilate`` px; None when the frame has no seg_mask or no mouth pixel."""
    if seg is None:
        return None
    ys, xs = np.nonzero(np.isin(np.asarray(seg), MOUTH_REGIONS))
    if ys.size == 0:
        return None
    H, W = seg.shape[:2]
    return (max(int(ys.min()) - dilate, 0), min(int(ys.max()) + 1 + dilate, H),
            max(int(xs.min()) - dilate, 0), min(int(xs.max()) + 1 + dilate, W))


def mouth_psnr(pred: torch.Tensor, gt: torch.Tensor, box) -> float | None:
    """PSNR (dB) of [H, W, 3] images in [0, 1] inside ``box`` (None when box is None)."""
    if box is None:
        return None
    y0, y1, x0, x1 = box
    return psnr(pred[y0:y1, x0:x1], gt[y0:y1, x0:x1])


def mouth_opening(img: torch.Tensor, box, seg: np.ndarray | None = None, truth: torch.Tensor | None = None) -> float | None:
    """Number of open-mouth pixels of [H, W, 3] ``img`` in [0, 1] inside ``box``.

    With the ground truth's region ids ``seg`` [H, W]: the pixels of the truth's mouth
    regions whose colour is farther than ``OPEN_DIST`` from every colour of the ground truth
    ``truth`` [H, W, 3] (``img`` itself when None) on the box's face pixels that are not
    mouth interior. Without ``seg`` (or without such pixels): pixels darker than ``DARK``."""
    if box is None:
        return None
    y0, y1, x0, x1 = box
    crop = img[y0:y1, x0:x1].float()
    if seg is not None:
        ids = np.asarray(seg)[y0:y1, x0:x1]
        ref = (img if truth is None else truth)[y0:y1, x0:x1].float().to(crop.device)
        face = torch.from_numpy((ids > 0) & (ids != int(Region.MOUTH_INTERIOR))).to(crop.device)
        if face.any():
            near = torch.cdist(crop.reshape(-1, 3), ref[face]).min(1).values.reshape(crop.shape[:2])
            region = torch.from_numpy(np.isin(ids, MOUTH_REGIONS)).to(crop.device)
            return float(((near > OPEN_DIST) & region).sum())
    lum = 0.299 * crop[..., 0] + 0.587 * crop[..., 1] + 0.114 * crop[..., 2]
    return float((lum < DARK).sum())


def lip_motion(rendered, truth) -> float | None:
    """Pearson correlation of rendered vs true mouth openings over frames (None entries are
    dropped); 0 when either side does not vary, None with fewer than 3 frames."""
    pairs = [(r, t) for r, t in zip(rendered, truth) if r is not None and t is not None]
    if len(pairs) < 3:
        return None
    r, t = (np.asarray(v, np.float64) for v in zip(*pairs))
    if r.std() < 1e-6 or t.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(r, t)[0, 1])


class MouthScore:
    """Accumulates one sequence's mouth numbers (per-frame mouth PSNR, openings)."""

    def __init__(self):
        self.psnr: list[float] = []
        self.rendered: list[float | None] = []
        self.truth: list[float | None] = []

    def add(self, pred: torch.Tensor, gt: torch.Tensor, seg: np.ndarray | None) -> None:
        """Score one frame: render and ground truth [H, W, 3] in [0, 1], gt region ids [H, W]."""
        box = mouth_box(seg)
        if box is None:
            return
        self.psnr.append(mouth_psnr(pred, gt, box))
        self.rendered.append(mouth_opening(pred, box, seg, gt))
        self.truth.append(mouth_opening(gt, box, seg))

    def result(self) -> dict:
        """{"mouth_psnr", "lip_motion"} (None each when not measurable)."""
        return {"mouth_psnr": float(np.mean(self.psnr)) if self.psnr else None,
                "lip_motion": lip_motion(self.rendered, self.truth)}


def mean_of(values) -> float | None:
    """Mean of the non-None values (None when there is none)."""
    v = [x for x in values if x is not None]
    return float(np.mean(v)) if v else None
