"""The built-in demo: synthesize a small cast, train one model, render, evaluate.

Everything runs offline on the built-in procedural head (no download, no licensed model).
Outputs in ``out/``: ``data/`` (the synthetic cast), ``runs/`` (the training run),
``render.mp4`` (identity 0's sequence), ``transfer.mp4`` (identity 0 driven by identity
1's expressions and poses, side by side with the driver), ``contact_sheet.png`` (held-out
ground truth vs render per identity, and transfer ground truth vs render, each followed by
an enlarged crop of the ground truth's mouth box, truth | render) and ``metrics.json`` (the
keys of ``fastminerf eval``, with ``mouth_psnr`` and ``lip_motion``).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .config import load_config
from .data.layout import read_identity, read_seg
from .data.synth.cast import synthesize_cast
from .eval.mouth import mouth_box
from .files import write_json
from .model.frames import frames_from_cast
from .model.loading import cast_of, load_avatar
from .render.sequence import render_sequence
from .render.transfer import driven_frames
from .render.video import grid_image, to_uint8, write_image, write_video
from .render.views import background_color, composite_target, render_image
from .train.trainer import train


def run_demo(out: str | Path, *, minutes: float = 3.0, identities: int = 3, frames: int = 40, size: int = 128, seed: int = 0,
             config: str = "tiny_cpu", overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Run the demo; returns the metrics (also written to ``out/metrics.json``)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "cast.json").is_file():
        say(progress, f"[1/3] synthesizing {identities} identities x {frames} frames at {size}px -> {data}")
        synthesize_cast(data, n_identities=identities, n_frames=frames, size=size, seed=seed, overwrite=True)
    t_synth = time.perf_counter() - t0
    say(progress, f"[2/3] training one model for all identities (budget {minutes} min), then evaluating held-out frames")
    cfg = load_config(config, [f"train.max_minutes={minutes}", *(overrides or [])])
    run_dir, metrics = train(cfg, [data], out / "runs", progress=progress)  # ends with the held-out eval
    t_train = time.perf_counter() - t0 - t_synth
    say(progress, "[3/3] rendering videos and contact sheet")
    avatar, cfg = load_avatar(run_dir)
    cast = cast_of(avatar)
    a, b = cast.names[0], cast.names[1 % cast.n_identities]
    write_video(out / "render.mp4", render_sequence(avatar, cast, a, split="all", progress=progress), cast.identities[0].fps)
    write_video(out / "transfer.mp4", render_sequence(avatar, cast, a, expressions_from=b, side_by_side=True, progress=progress), cast.identities[0].fps)
    write_image(out / "contact_sheet.png", contact_sheet(avatar, cast))
    metrics.update(lpips=None, run=str(run_dir), step=avatar.step, seconds={
        "synthesis": round(t_synth, 1), "training": round(t_train, 1), "total": round(time.perf_counter() - t0, 1)})
    write_json(out / "metrics.json", metrics)
    return metrics


@torch.no_grad()
def contact_sheet(avatar, cast, max_identities: int = 6) -> np.ndarray:
    """Rows: identities. Columns: held-out GT | render | mouth GT | mouth render, then A driven
    by B: GT | render | mouth GT | mouth render. The mouth tiles are the ground truth's mouth
    box (seg_mask lips + mouth interior, :func:`fastminerf.eval.mouth.mouth_box`) enlarged to
    the tile size; blank where the frame has no seg_mask."""
    bg = background_color(avatar.rc.eval_background, avatar.canonical.device)
    rows = []
    for k in range(min(cast.n_identities, max_identities)):
        f = cast.frames("test", k)[0]
        fb = frames_from_cast(avatar, cast, np.array([f]), own_latents=False)
        img = render_image(avatar, fb, torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f]), cast.height, cast.width, bg)
        seg = read_seg(cast.identities[k], int(cast.frame_local[f]))
        row = with_mouth(to_uint8(composite_target(cast.image(f), bg.cpu())), to_uint8(img["rgb"]), seg)
        tdir = cast.identities[k].root / "transfer"
        subs = sorted(p for p in tdir.iterdir() if p.name in cast.names) if tdir.is_dir() else []
        if subs:
            b = cast.index(subs[0].name)
            gt = read_identity(subs[0])
            meta = json.loads((subs[0] / "transforms_test.json").read_text()).get("transfer", {})
            local = meta.get("driver_frames", [int(cast.frame_local[cast.frames("test", b)[0]])])[0]
            fb2, c2h, K = driven_frames(avatar, cast, k, np.array([cast.frame_offset[b] + local]))
            img2 = render_image(avatar, fb2, c2h[0], K[0], cast.height, cast.width, bg)
            row += with_mouth(to_uint8(composite_target(gt.image(0), bg.cpu())), to_uint8(img2["rgb"]), read_seg(gt, 0))
        rows.append(row)
    width = max(len(r) for r in rows)
    blank = np.full_like(rows[0][0], 255)
    header = ["held-out truth", "render", "mouth truth", "mouth render",
              "transfer truth", "transfer render", "mouth truth", "mouth render"]
    return grid_image([r + [blank] * (width - len(r)) for r in rows], header=header)


def with_mouth(truth: np.ndarray, render: np.ndarray, seg: np.ndarray | None) -> list[np.ndarray]:
    """[truth, render, truth's mouth, render's mouth]: [H, W, 3] uint8 images, the last two
    the ground truth's mouth box (from region ids ``seg`` [H, W]) enlarged to [H, W]
    (white tiles when there is no box)."""
    box = mouth_box(seg)
    return [truth, render, mouth_crop(truth, box), mouth_crop(render, box)]


def mouth_crop(img: np.ndarray, box, margin: float = 0.25) -> np.ndarray:
    """The square around ``box`` = (y0, y1, x0, x1) of [H, W, 3] uint8 ``img``, grown by
    ``margin`` of its side and clipped to the image, resized (nearest pixel, so the pixels
    the metrics see stay visible) to [H, W, 3]; a white tile when ``box`` is None."""
    H, W = img.shape[:2]
    if box is None:
        return np.full_like(img, 255)
    y0, y1, x0, x1 = box
    side = min(max(y1 - y0, x1 - x0) * (1 + margin), H, W)
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    top = int(round(min(max(cy - side / 2, 0), H - side)))
    left = int(round(min(max(cx - side / 2, 0), W - side)))
    s = max(int(round(side)), 1)
    crop = img[top : top + s, left : left + s]
    ys = np.minimum((np.arange(H) * crop.shape[0]) // H, crop.shape[0] - 1)
    xs = np.minimum((np.arange(W) * crop.shape[1]) // W, crop.shape[1] - 1)
    return np.ascontiguousarray(crop[ys][:, xs])


def say(enabled: bool, msg: str) -> None:
    if enabled:
        print(msg, flush=True)
