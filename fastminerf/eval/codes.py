"""A 2-D map of the identity codes (MI-NeRF's identity-code visualisation).

Principal component analysis of the codes [N, d] (exact and deterministic for the handful
to hundreds of identities of a cast; t-SNE would need a perplexity below N and a heavy
dependency), drawn as a labelled scatter plot with Pillow only.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError
from ..model.checkpoint import load_checkpoint

PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]


def checkpoint_codes(checkpoint) -> tuple[list[str], np.ndarray, str]:
    """(identity names, codes [N, d] float32, checkpoint file) of a checkpoint file or run folder."""
    state = load_checkpoint(checkpoint)
    codes = state["model"].get("identity_codes.weight")
    names = list(state["cast"].get("names", []))
    if codes is None or codes.shape[0] != len(names):
        raise InputError(state["path"], "no identity code table matching the cast's names in this checkpoint")
    return names, codes.detach().cpu().float().numpy(), state["path"]


def pca_2d(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project codes [N, d] on their first two principal axes.

    Returns:
        (xy [N, 2] float64 centred coordinates, explained [2] share of the variance per axis;
        axes beyond the data's rank are 0).
    """
    x = np.asarray(codes, np.float64)
    x = x - x.mean(0)
    xy = np.zeros((x.shape[0], 2))
    explained = np.zeros(2)
    if x.shape[0] < 2 or not np.any(x):
        return xy, explained
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    k = min(2, s.shape[0])
    xy[:, :k] = u[:, :k] * s[:k]
    for j in range(k):  # sign convention: the largest |coordinate| is positive (stable plots)
        if xy[np.argmax(np.abs(xy[:, j])), j] < 0:
            xy[:, j] *= -1
    explained[:k] = s[:k] ** 2 / max(float((s**2).sum()), 1e-30)
    return xy, explained


def draw_code_map(names: list[str], xy: np.ndarray, explained: np.ndarray, title: str = "identity codes (PCA)",
                  size: tuple[int, int] = (720, 560)) -> np.ndarray:
    """A labelled scatter plot of points xy [N, 2] → [H, W, 3] uint8."""
    W, H = size
    left, right, top, bottom = 70, 30, 50, 60
    img = Image.new("RGB", (W, H), (255, 255, 255))
    d = ImageDraw.Draw(img)
    font, small = _font(15), _font(12)
    lo, hi = xy.min(0), xy.max(0)
    span = np.maximum(hi - lo, 1e-9)
    lo, hi = lo - 0.12 * span, hi + 0.12 * span  # room for labels
    flat = (hi - lo) < 1e-6
    lo[flat], hi[flat] = -1.0, 1.0

    def to_px(p):
        u = left + (p[0] - lo[0]) / (hi[0] - lo[0]) * (W - left - right)
        v = H - bottom - (p[1] - lo[1]) / (hi[1] - lo[1]) * (H - top - bottom)
        return float(u), float(v)

    d.rectangle([left, top, W - right, H - bottom], outline=(60, 60, 60))
    for axis in range(2):
        for t in _ticks(lo[axis], hi[axis]):
            if axis == 0:
                u, _ = to_px((t, lo[1]))
                d.line([u, H - bottom, u, H - bottom + 5], fill=(60, 60, 60))
                d.text((u, H - bottom + 8), f"{t:g}", fill=(60, 60, 60), font=small, anchor="mt")
            else:
                _, v = to_px((lo[0], t))
                d.line([left - 5, v, left, v], fill=(60, 60, 60))
                d.text((left - 8, v), f"{t:g}", fill=(60, 60, 60), font=small, anchor="rm")
    d.text((W / 2, 18), title, fill=(0, 0, 0), font=font, anchor="mm")
    d.text(((left + W - right) / 2, H - 18), f"PC1 ({100 * explained[0]:.0f} % of variance)", fill=(0, 0, 0), font=font, anchor="mm")
    label = Image.new("RGB", (H - top - bottom, 22), (255, 255, 255))
    ImageDraw.Draw(label).text((label.width / 2, 11), f"PC2 ({100 * explained[1]:.0f} % of variance)", fill=(0, 0, 0),
                               font=font, anchor="mm")
    img.paste(label.rotate(90, expand=True), (4, top))
    for i, (name, p) in enumerate(zip(names, xy)):
        u, v = to_px(p)
        c = PALETTE[i % len(PALETTE)]
        d.ellipse([u - 6, v - 6, u + 6, v + 6], fill=c, outline=(0, 0, 0))
        d.text((u + 9, v - 9), name, fill=tuple(int(0.7 * x) for x in c), font=font, anchor="ls")
    return np.asarray(img)


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values inside [lo, hi]."""
    step = 10 ** np.floor(np.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (m * step) <= n:
            step *= m
            break
    first = np.ceil(lo / step) * step
    return [round(float(t), 10) for t in np.arange(first, hi + 1e-9 * step, step)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed bitmap font
        return ImageFont.load_default()
