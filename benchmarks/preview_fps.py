"""Preview frame rate: ``render_view`` frames per second at 128², 256², 512² per backend.

What the viewer does per frame, timed through the same function (``render_view``, the
viewer's chunk size, white background) on a trained model:
  orbit    the camera moves around the head (yaw −30°…30°), the expression is fixed —
           what dragging the view costs (the mesh's BVH is reused)
  animate  the camera is fixed, the expression changes every frame (sliders / playback:
           a new mesh from the expression basis each frame)
Backends: "torch" always; "cuda" when a GPU is present and our extension builds
(``fastminerf.ops._backend.resolve_backend``). Per size: a warm-up frame, then --frames
frames (fewer when --max-seconds runs out); FPS = frames / their total time.

    python benchmarks/preview_fps.py --checkpoint RUN [--sizes 128 256 512] [--frames 8]
    python benchmarks/preview_fps.py              # trains a tiny model first (synthetic cast, --train-minutes)

Writes benchmarks/results/preview_fps_<device>.json and .md (temp file + rename).
"""
from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

from fastminerf.api import load_avatar  # noqa: E402
from fastminerf.ops._backend import resolve_backend  # noqa: E402
from fastminerf.render.views import ViewCamera, look_at, render_view  # noqa: E402
from fastminerf.viewer.camera import HOME_FOV, home_view  # noqa: E402
from fastminerf.viewer.server import preview_chunk  # noqa: E402

from common import environment, load_averages, time_calls, write_results  # noqa: E402


def tiny_checkpoint(work: Path, minutes: float) -> Path:
    """Synthesize 3 identities × 40 frames at 128² and train tiny_cpu for ``minutes``."""
    from fastminerf.config import load_config
    from fastminerf.data.synth.cast import synthesize_cast
    from fastminerf.train.trainer import train

    synthesize_cast(work / "cast", n_identities=3, n_frames=40, size=128, progress=False)
    run, _ = train(load_config("tiny_cpu", [f"train.max_minutes={minutes}"]), [work / "cast"], work / "runs",
                   progress=False)
    return run


def backends() -> list[str]:
    """torch, plus cuda when it resolves (GPU present and the extension loads)."""
    out = ["torch"]
    if torch.cuda.is_available() and resolve_backend("auto") == "cuda":
        out.append("cuda")
    return out


def time_frames(avatar, size: int, mode: str, frames: int, max_seconds: float) -> dict:
    """Render a warm-up frame then up to ``frames`` frames; returns timing figures."""
    info = avatar.info
    position, target = home_view(info)
    radius = float(np.linalg.norm(position - target))
    E = info.n_expressions
    rng = np.random.default_rng(0)
    mean, std = np.asarray(info.expr_mean), np.asarray(info.expr_std)
    chunk = preview_chunk(avatar)

    def frame(k: int) -> np.ndarray:
        if mode == "orbit":
            yaw = np.deg2rad(-30 + 60 * k / max(frames - 1, 1))
            eye = target + radius * np.array([np.sin(yaw), 0.0, np.cos(yaw)])
            e = np.zeros(E, np.float32)
        else:
            eye = position
            e = np.clip(mean + std * rng.standard_normal(E), 0 if mean.min() >= 0 else None, None).astype(np.float32)
        cam = ViewCamera.from_fov(look_at(eye, target), HOME_FOV, 1.0, size)
        return render_view(avatar, cam, k % len(info.names), e, chunk=chunk)

    shapes = set()
    times = time_calls(lambda k: shapes.add(frame(k + 1).shape), avatar.canonical.device, frames, max_seconds=max_seconds)
    assert shapes == {(size, size, 3)}  # the warm-up call (k = −1) renders frame 0: kernels, BVH, caches
    return {"frames": len(times), "fps": len(times) / sum(times), "median_ms": 1000 * float(np.median(times)),
            "min_ms": 1000 * min(times)}


def markdown(result: dict) -> str:
    lines = [f"# Preview frame rate ({result['device_kind']})", "",
             "`render_view` frames per second on a trained tiny model (what `fastminerf preview` renders per "
             "frame; see benchmarks/preview_fps.py for the two modes).", "",
             "    " + result["command"], "",
             f"Model: {result['model']}. Machine: "
             f"{'; '.join(f'{k}: {v}' for k, v in result['machine']['devices'].items())}; load average "
             f"{result['machine']['load_average_before']} before, {result['machine']['load_average_after']} after "
             "(a shared machine: other jobs ran beside this one).",
             f"Versions: {', '.join(f'{k} {v}' for k, v in result['versions'].items())}.", "",
             "| backend | mode | size | FPS | median ms | frames | 1-min load (start → end) |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['backend']} | {r['mode']} | {r['size']}² | **{r['fps']:.2f}** | {r['median_ms']:.0f} | "
                     f"{r['frames']} | {r['load_1min'][0]} → {r['load_1min'][1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", help="trained run folder or checkpoint (default: train a tiny one)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--modes", nargs="+", default=["orbit", "animate"], choices=["orbit", "animate"])
    ap.add_argument("--frames", type=int, default=8, help="timed frames per size (default: 8)")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop a size after this much rendering")
    ap.add_argument("--train-minutes", type=float, default=3.0, help="training budget without --checkpoint")
    ap.add_argument("--note", default="", help="how the checkpoint was made (goes into the report)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    load_before = load_averages()
    work = Path(tempfile.mkdtemp(prefix="preview-fps-"))
    ckpt = Path(args.checkpoint) if args.checkpoint else tiny_checkpoint(work, args.train_minutes)
    rows, devices = [], {}
    for backend in backends():
        avatar, cfg = load_avatar(ckpt, device="cuda" if backend == "cuda" else "cpu", backend=backend)
        devices[backend] = environment(torch.device("cuda" if backend == "cuda" else "cpu"))["device"]
        for mode in args.modes:
            for size in args.sizes:
                load = load_averages()[0]
                r = {"backend": backend, "mode": mode, "size": size,
                     **time_frames(avatar, size, mode, args.frames, args.max_seconds),
                     "load_1min": [load, load_averages()[0]]}
                print(f"{backend:5s} {mode:7s} {size:4d}²  {r['fps']:8.2f} FPS  (median {r['median_ms']:.0f} ms, "
                      f"{r['frames']} frames)", flush=True)
                rows.append(r)
    kind = "cuda" if "cuda" in devices else "cpu"
    result = {
        "command": "python benchmarks/preview_fps.py " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "device_kind": kind,
        "model": f"{cfg.name}, {len(avatar.info.names)} identities, step {avatar.step}, chunk {preview_chunk(avatar)} rays"
                 + (f" ({args.note})" if args.note else ""),
        "rows": rows,
        "machine": {"devices": devices, "load_average_before": load_before,
                    "load_average_after": load_averages()},
        "versions": environment(),
    }
    write_results(args.out, f"preview_fps_{kind}", result, markdown(result))
    print(f"wrote {args.out}/preview_fps_{kind}.json and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
