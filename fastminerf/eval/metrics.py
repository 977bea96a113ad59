"""Image metrics: PSNR and SSIM (Gaussian window, as in Wang et al. 2004)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR in dB of images in [0, 1] ([..., 3]); ``mask`` [...] restricts the pixels."""
    se = (pred.float() - target.float()).pow(2).mean(-1)
    mse = se[mask].mean() if mask is not None else se.mean()
    return float(-10 * torch.log10(mse.clamp_min(1e-10)))


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM of two [H, W, 3] images in [0, 1]."""
    x = pred.float().permute(2, 0, 1)[None]
    y = target.float().permute(2, 0, 1)[None]
    g = torch.exp(-((torch.arange(window, dtype=torch.float32) - window // 2) ** 2) / (2 * sigma**2))
    g = (g / g.sum()).to(x.device)
    k = (g[:, None] * g[None, :]).expand(3, 1, window, window)

    def blur(z):
        return F.conv2d(z, k, groups=3)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(s.mean())


def flicker(frames) -> float:
    """Frame-to-frame change of a video: mean |I_t − I_{t−1}| over pixels, channels and
    t = 1..T−1, intensities in [0, 1] (frames: T ≥ 2 images [H, W, 3], uint8 or float in
    [0, 1]). On a static-camera sequence this measures jitter (plus the real motion)."""
    x = np.stack([np.asarray(f.detach().cpu() if hasattr(f, "detach") else f) for f in frames])
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    if x.shape[0] < 2:
        raise ValueError("flicker needs at least two frames")
    return float(np.abs(np.diff(x, axis=0)).mean())
