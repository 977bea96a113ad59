"""Where in the mouth is the error? (issue 13)

    python benchmarks/mouth_error.py RUN [--split test|train] [--every N] [--mean-expression]

Renders the frames of a split of a trained run (``test``: every held-out frame, with the
identity's mean latent code; ``train``: every N-th training frame with its own code) and
splits the squared error inside the mouth box that ``mouth_psnr`` uses
(:func:`fastminerf.eval.mouth.mouth_box`) by what the ground truth shows there: skin, lips
(seg 120/130), and the mouth interior (seg 140) by its luminance — teeth (> 0.5), mid tones,
the dark gap (< 0.2). For each class it prints its share of the pixels and of the error, its
RMSE, and the mouth PSNR the run would have were that class perfect. A large gap between the
``train`` and ``test`` interior RMSE means the interior is memorised, not learned.
``--mean-expression`` renders with every frame's expression set to the training mean (does
the fit depend on the expression code?). Prints only; nothing is written.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

CLASSES = ("skin", "lips", "interior: teeth", "interior: mid", "interior: dark gap")


def classes(seg: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Class index [H, W] into CLASSES from the truth's seg [H, W] and colour [H, W, 3]."""
    lum = gt.mean(-1)
    out = np.zeros(seg.shape, np.int64)
    out[np.isin(seg, (120, 130))] = 1
    inner = seg == 140
    out[inner] = np.where(lum[inner] > 0.5, 2, np.where(lum[inner] > 0.2, 3, 4))
    return out


@torch.no_grad()
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--every", type=int, default=10, help="train split: every N-th frame")
    ap.add_argument("--mean-expression", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    from fastminerf.api import cast_of, load_avatar
    from fastminerf.data.layout import read_seg
    from fastminerf.eval.mouth import mouth_box
    from fastminerf.model.frames import CastFrames
    from fastminerf.render.views import background_color, composite_target, render_image

    avatar = load_avatar(a.run, device="cpu")[0].eval()
    cast, bg = cast_of(avatar), background_color("white")
    batches = CastFrames(avatar, cast)
    frames = cast.frames(a.split)[:: a.every if a.split == "train" else 1]
    se, n, psnrs = np.zeros(len(CLASSES)), np.zeros(len(CLASSES)), []
    for f in frames:
        seg = read_seg(cast.identities[int(cast.frame_identity[f])], int(cast.frame_local[f]))
        box = mouth_box(seg)
        if box is None:
            continue
        fb = batches.batch(np.array([f]), own_latents=a.split == "train")
        if a.mean_expression:
            fb = replace(fb, expression=avatar.expr_mean.expand_as(fb.expression).clone())
        out = render_image(avatar, fb, torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f]),
                           cast.height, cast.width, bg)
        y0, y1, x0, x1 = box
        gt = composite_target(cast.image(f), bg).numpy()[y0:y1, x0:x1]
        err = ((out["rgb"].numpy()[y0:y1, x0:x1] - gt) ** 2).mean(-1)
        psnrs.append(-10 * np.log10(max(err.mean(), 1e-12)))
        c = classes(seg[y0:y1, x0:x1], gt)
        se += np.bincount(c.ravel(), err.ravel(), len(CLASSES))
        n += np.bincount(c.ravel(), minlength=len(CLASSES))
    if not psnrs:
        print("no frame of this split has a mouth box (seg_mask lips / interior)")
        return 1
    print(f"{a.run}: {a.split}, {len(psnrs)} frames, mean mouth PSNR {np.mean(psnrs):.2f} dB")
    print("| class | pixels | error | RMSE | mouth PSNR were it perfect |\n|---|---|---|---|---|")
    for k in np.argsort(-se):
        if n[k]:
            rest = (se.sum() - se[k]) / n.sum()
            print(f"| {CLASSES[k]} | {n[k] / n.sum():.1%} | {se[k] / se.sum():.1%} | {np.sqrt(se[k] / n[k]):.3f} | "
                  f"{-10 * np.log10(max(rest, 1e-12)):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
