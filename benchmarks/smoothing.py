"""Render-time temporal smoothing (``--smooth SIGMA``): flicker with and without.

Identity A of a trained model is driven from an expression file (static camera: A's first
training frame) by B's expression sequence with Gaussian noise added to every coefficient
(simulated tracking jitter: ``--noise`` × the training std of that coefficient). Each
sequence is rendered with smoothing σ ∈ {0, 1, 2, 3} frames and compared with

* flicker = mean |I_t − I_{t−1}| (intensities in [0, 1]; static camera, so this is jitter
  plus the real motion), against the clean sequence's flicker (the real motion alone);
* fidelity = mean PSNR against the render of the clean (noise-free) sequence.

Writes ``benchmarks/results/smoothing.{json,md}`` (temp file + rename).

    python benchmarks/smoothing.py --checkpoint RUN [--identity id000] [--driver id001]
                                   [--frames 60] [--noise 0.3] [--sigmas 0 1 2 3]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import RESULTS, environment, load_averages, write_atomic  # noqa: E402


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--identity", default="id000")
    ap.add_argument("--driver", default="id001")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--noise", type=float, default=0.3, help="jitter std, × each coefficient's training std")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--results", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    from fastminerf.api import cast_of, load_avatar, render_sequence
    from fastminerf.eval.metrics import flicker, psnr

    torch.set_num_threads(args.threads)
    l0, t0 = load_averages(), time.perf_counter()
    avatar, _ = load_avatar(args.checkpoint, device="cpu")
    cast = cast_of(avatar, names=[args.identity, args.driver])
    src = cast.frames("all", cast.index(args.driver))[: args.frames]
    clean = cast.expressions[src]
    rng = np.random.default_rng(0)
    noisy = clean + rng.normal(0, 1, clean.shape).astype(np.float32) * args.noise * avatar.expr_std.cpu().numpy()

    def render(e, s):
        return [torch.from_numpy(f).float() / 255 for f in render_sequence(avatar, cast, args.identity, expressions=e, smooth=s)]

    ref = render(clean, 0.0)
    rows = {"clean": {"sigma": 0.0, "flicker": flicker(ref), "psnr_vs_clean": None}}
    for s in args.sigmas:
        out = render(noisy, s)
        rows[f"noisy, smooth {s:g}"] = {"sigma": s, "flicker": flicker(out),
                                        "psnr_vs_clean": float(np.mean([psnr(a, b) for a, b in zip(out, ref)]))}
        print(f"sigma {s:g}: flicker {rows[f'noisy, smooth {s:g}']['flicker']:.5f}", flush=True)
    res = {"command": "python benchmarks/smoothing.py " + " ".join(argv), "machine": environment(), "load_before": l0,
           "load_after": load_averages(), "seconds": round(time.perf_counter() - t0, 1), "checkpoint": str(args.checkpoint),
           "identity": args.identity, "driver": args.driver, "frames": len(src), "noise": args.noise, "rows": rows}
    write_atomic(args.results / "smoothing.json", json.dumps(res, indent=1))
    write_atomic(args.results / "smoothing.md", markdown(res))
    print((args.results / "smoothing.md").read_text())
    return 0


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# Render-time smoothing: flicker with and without `--smooth`",
        "",
        f"Command: `{r['command']}` (from the repository root)",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average before / after: "
        f"{r['load_before']} / {r['load_after']}; {r['seconds']:.0f} s.",
        "",
        f"{r['identity']} driven from an expression file by {r['driver']}'s first {r['frames']} frames (static camera), "
        f"with Gaussian jitter of {r['noise']:g} × each coefficient's training std added to every frame. "
        "Flicker = mean |I_t − I_{t−1}| (intensities in [0, 1]); the clean row is the real motion alone. "
        "Fidelity = mean PSNR against the render of the clean sequence.",
        "",
        "| sequence | flicker (×10⁻³) | PSNR vs clean render (dB) |",
        "|---|---|---|",
    ]
    for k, v in r["rows"].items():
        p = "—" if v["psnr_vs_clean"] is None else f"{v['psnr_vs_clean']:.2f}"
        lines.append(f"| {k} | {1000 * v['flicker']:.3f} | {p} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
