"""The mouth benchmark: mouth PSNR and lip motion held out and in transfer (issue 13).

    python benchmarks/mouth.py --cast CAST [--mouth lips-only|pocket] [--minutes 8]
        [--config tiny_cpu] [--set KEY=VALUE ...] [--label NAME] [--out FILE.json]

Synthesizes the cast when CAST does not exist (4 identities × 60 frames, 128², seed 0;
``--mouth lips-only`` writes tracked meshes without the mouth pocket, like FLAME, in INSTA's
layout), trains one model with the given preset + overrides for at most ``--minutes`` of
wall time, and evaluates every held-out frame and every transfer pair: whole-image PSNR,
``mouth_psnr`` and ``lip_motion`` (see fastminerf/eval/mouth.py). Writes a JSON file with
the exact command, machine and load average (``--out``, default
benchmarks/results/mouth_<label>.json) and prints one markdown row.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import dumps, environment, load_averages, quality, write_atomic  # noqa: E402

KEYS = ("heldout_psnr", "heldout_mouth_psnr", "heldout_lip_motion", "transfer_psnr", "transfer_mouth_psnr",
        "transfer_lip_motion")


@torch.no_grad()
def mouth_crops(avatar, cast, path: Path, n: int = 8, half: int = 14, zoom: int = 4) -> Path:
    """PNG of the ``n`` held-out frames with the most open GT mouth (seg 140 pixels), each a
    (2·half)² crop around the mouth, truth left and render right, zoomed ``zoom``×."""
    from PIL import Image

    from fastminerf.data.layout import read_seg
    from fastminerf.model.frames import CastFrames
    from fastminerf.render.views import background_color, composite_target, render_image

    bg = background_color("white")
    test = cast.frames("test")
    segs = {int(f): read_seg(cast.identities[int(cast.frame_identity[f])], int(cast.frame_local[f])) for f in test}
    order = sorted(test, key=lambda f: -int((segs[int(f)] == 140).sum()))[:n]
    batches, rows = CastFrames(avatar, cast), []
    for f in order:
        out = render_image(avatar, batches.batch(np.array([f]), own_latents=False), torch.from_numpy(cast.cam_to_head[f]),
                           torch.from_numpy(cast.intrinsics[f]), cast.height, cast.width, bg)
        gt = composite_target(cast.image(f), bg)
        ys, xs = np.nonzero(np.isin(segs[int(f)], (120, 130, 140)))
        cy = int(np.clip((ys.min() + ys.max()) // 2, half, cast.height - half))
        cx = int(np.clip((xs.min() + xs.max()) // 2, half, cast.width - half))
        pair = [img[cy - half : cy + half, cx - half : cx + half] for img in (gt, out["rgb"])]
        rows.append(torch.cat([pair[0], torch.ones(2 * half, 1, 3), pair[1]], 1))
    sheet = torch.cat([torch.cat([r, torch.ones(1, r.shape[1], 3)], 0) for r in rows], 0)
    img = (sheet.clamp(0, 1).numpy() * 255).round().astype(np.uint8).repeat(zoom, 0).repeat(zoom, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cast", required=True)
    p.add_argument("--mouth", choices=["pocket", "lips-only"], default="lips-only")
    p.add_argument("--minutes", type=float, default=8.0)
    p.add_argument("--config", default="tiny_cpu")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--label", default="run")
    p.add_argument("--work", default="/tmp/fastminerf_mouth_runs")
    p.add_argument("--out")
    p.add_argument("--checkpoint", help="evaluate this run folder or checkpoint instead of training")
    p.add_argument("--crops", help="write a PNG of mouth crops (truth | render) of the most open held-out frames")
    a = p.parse_args(argv)

    from fastminerf.api import cast_of, load_avatar
    from fastminerf.config import load_config
    from fastminerf.data.synth.cast import synthesize_cast
    from fastminerf.data.synth.lips_only import lips_only_cast
    from fastminerf.train.trainer import train

    cast_dir = Path(a.cast)
    if not cast_dir.exists():
        synthesize_cast(cast_dir, 4, 60, 128, 0, progress=False)
        if a.mouth == "lips-only":
            lips_only_cast(cast_dir)
    cfg = load_config(a.config, [f"train.max_minutes={a.minutes}", "train.eval_every=0", *a.overrides])
    load_start = load_averages()
    t0, c0 = time.perf_counter(), time.process_time()
    run = a.checkpoint or train(cfg, [cast_dir], Path(a.work) / a.label, progress=False)[0]
    train_s, train_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    load_end = load_averages()
    avatar = load_avatar(run, device="cpu")[0].eval()
    metrics = Path(run) / "metrics.json"
    steps = json.loads(metrics.read_text()).get("step") if metrics.is_file() else None
    cast = cast_of(avatar)
    q = quality(avatar, cast, cast)
    res = {"command": " ".join(["python", "benchmarks/mouth.py", *(argv if argv is not None else sys.argv[1:])]), "label": a.label, "cast": str(cast_dir), "mouth": a.mouth, "config": a.config, "overrides": a.overrides,
           "steps": steps, "train_s": round(train_s, 1), "train_cpu_s": round(train_cpu_s, 1),
           "load_average_start": load_start, "load_average_end_of_training": load_end, "run": str(run),
           **{k: q[k] for k in KEYS}, "per_identity": q["per_identity"], "environment": environment()}
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"mouth_{a.label}.json"
    write_atomic(out, dumps(res))
    if a.crops:
        mouth_crops(avatar, cast, Path(a.crops))
    row = " | ".join(f"{q[k]:.3f}" if isinstance(q[k], float) else str(q[k]) for k in KEYS)
    print(f"| {a.label} | {a.mouth} | {train_s:.0f} s | {row} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
