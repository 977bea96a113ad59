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
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import dumps, environment, load_averages, quality, write_atomic  # noqa: E402

KEYS = ("heldout_psnr", "heldout_mouth_psnr", "heldout_lip_motion", "transfer_psnr", "transfer_mouth_psnr",
        "transfer_lip_motion")


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
    t0 = time.perf_counter()
    run, _ = train(cfg, [cast_dir], Path(a.work) / a.label, progress=False)
    train_s = time.perf_counter() - t0
    avatar = load_avatar(run, device="cpu")[0].eval()
    cast = cast_of(avatar)
    q = quality(avatar, cast, cast)
    res = {"label": a.label, "cast": str(cast_dir), "mouth": a.mouth, "config": a.config, "overrides": a.overrides,
           "train_s": round(train_s, 1), "load_average_start": load_start, "run": str(run),
           **{k: q[k] for k in KEYS}, "per_identity": q["per_identity"], "environment": environment()}
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / f"mouth_{a.label}.json"
    write_atomic(out, dumps(res))
    row = " | ".join(f"{q[k]:.3f}" if isinstance(q[k], float) else str(q[k]) for k in KEYS)
    print(f"| {a.label} | {a.mouth} | {train_s:.0f} s | {row} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
