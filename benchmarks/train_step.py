"""A full training step and 512² rendering, cuda backend vs torch backend, same device.

    python benchmarks/train_step.py                 # GPU if present, else CPU (cuda rows "unavailable")
    python benchmarks/train_step.py --out DIR --steps 40

Builds a small synthetic cast (spheres "heads" in our layout, see common.make_cast), then
for each backend trains with the same config and seed: warm-up steps, then timed steps at
the steady-state occupancy-refresh rate (every 16 steps, as after step 256), reporting
rays/s, samples/s, ms/step and peak memory; then renders 512x512 frames (frames/s). The
GPU uses the insta_512_gpu preset (16384 rays/step, 16 levels, 2^19 table, 128^3 grid),
the CPU the tiny_cpu preset. Writes train_step-<cpu|cuda>.json/.md into benchmarks/results/.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastminerf.config import load_config  # noqa: E402
from fastminerf.data.cast import load_cast  # noqa: E402
from fastminerf.model.frames import frames_from_cast
from fastminerf.ops import _backend  # noqa: E402
from fastminerf.render.views import render_image  # noqa: E402
from fastminerf.train.trainer import Trainer  # noqa: E402

from common import RESULTS, environment, make_cast, md_table, pick_device, sync, time_calls, write_results  # noqa: E402


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process-wide, KiB on Linux


def bench_backend(backend: str, cfg_name: str, overrides: list[str], cast, device, warmup: int, steps: int,
                  render_size: int, render_frames: int, run_dir: Path) -> dict:
    cfg = load_config(cfg_name, overrides + [f"train.backend={backend}"])
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(cfg, cast, run_dir / backend, device=device)
    for _ in range(warmup):
        trainer.train_step()
    trainer.step = max(trainer.step, 256)  # steady state: occupancy refresh every 16 steps
    sync(device)
    t0 = time.perf_counter()
    samples, losses = 0, []
    for _ in range(steps):
        st = trainer.train_step()
        samples += st.n_samples
        losses.append(st.loss)
    sync(device)
    sec = time.perf_counter() - t0
    rays = cfg.data.rays_per_batch
    row = {"backend": backend, "rays/step": rays, "ms/step": sec / steps * 1e3, "rays/s": rays * steps / sec,
           "samples/step": samples / steps, "samples/s": samples / sec, "loss (last)": losses[-1],
           "peak MB (train)": peak_memory_mb(device)}
    # 512² frames of the first training frame, camera of the cast scaled to the render size
    avatar = trainer.avatar.eval()
    fb = frames_from_cast(avatar, cast, np.array([0]), own_latents=True)
    c2h = torch.from_numpy(cast.cam_to_head[0])
    K = torch.from_numpy(cast.intrinsics[0]).clone()
    K *= render_size / cast.width
    bg = torch.ones(3, device=device)
    img = {}
    times = time_calls(lambda k: img.update(render_image(avatar, fb, c2h, K, render_size, render_size, bg)), device,
                       render_frames, warmup=int(device.type == "cuda"))
    rsec = float(np.mean(times))
    row.update({f"render {render_size}² ms": rsec * 1e3, f"render {render_size}² FPS": 1 / rsec,
                "render opacity mean": float(img["opacity"].mean())})
    print(f"{backend:6s} {row['ms/step']:9.1f} ms/step {row['rays/s']:12,.0f} rays/s {row['samples/s']:14,.0f} samples/s "
          f"peak {row['peak MB (train)']:8.0f} MB | render {render_size}²: {rsec * 1e3:9.1f} ms", flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for train_step-<device>.json/.md")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 48 GPU, 4 CPU)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 20 GPU, 2 CPU)")
    ap.add_argument("--render-size", type=int, default=512)
    ap.add_argument("--backends", default="torch,cuda", help="comma-separated backends to run")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    steps = args.steps or (48 if gpu else 4)
    warmup = args.warmup if args.warmup is not None else (20 if gpu else 2)
    if gpu:
        cfg_name, overrides = "insta_512_gpu", ["train.eval_every=0", "train.save_every=0", "train.max_minutes=null"]
        cast_args = dict(n_identities=4, n_frames=16, size=128, subdivisions=5)
    else:
        cfg_name, overrides = "tiny_cpu", ["train.eval_every=0", "train.save_every=0", "train.max_minutes=null",
                                           "data.rays_per_batch=1024", "data.frames_per_batch=16"]
        cast_args = dict(n_identities=3, n_frames=8, size=64, subdivisions=4)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cast = load_cast([make_cast(tmp / "cast", **cast_args)])
        for backend in args.backends.split(","):
            if backend == "cuda" and not (gpu and _backend.cuda_available()):
                why = "needs a CUDA device" if not gpu else _backend._CUDA_ERROR
                rows.append({"backend": "cuda", "status": f"unavailable ({why})"})
                print(f"cuda   unavailable ({why})")
                continue
            frames = 3 if (gpu and backend == "cuda") else 1  # the torch backend takes seconds per 512² frame
            rows.append(bench_backend(backend, cfg_name, overrides, cast, device, warmup, steps, args.render_size,
                                      frames, tmp / "runs"))
    by = {r["backend"]: r for r in rows if "ms/step" in r}
    speedup = by["torch"]["ms/step"] / by["cuda"]["ms/step"] if {"torch", "cuda"} <= set(by) else None
    env = environment(device)
    cfg = load_config(cfg_name, overrides)
    setup = {"preset": cfg_name, "overrides": overrides, "cast": cast_args, "rays_per_batch": cfg.data.rays_per_batch,
             "warmup_steps": warmup, "timed_steps": steps, "render_size": args.render_size}
    payload = {"environment": env, "setup": setup, "rows": rows, "train_step_speedup_cuda_vs_torch": speedup}
    cols = ["backend", "rays/step", "ms/step", "rays/s", "samples/step", "samples/s", "peak MB (train)",
            f"render {args.render_size}² ms", f"render {args.render_size}² FPS", "loss (last)", "status"]
    md = [f"# Training step and rendering on {env['device']}", "",
          f"`{env['command']}` — torch {env['torch']}, CUDA {env['cuda']}, commit {env['git_commit']}, {env['date']}, "
          f"1-min load average {env['load_average'][0]}", "",
          f"Preset `{cfg_name}` ({cfg.data.rays_per_batch} rays/step), cast {cast_args}; {warmup} warm-up steps, "
          f"{steps} timed steps at the steady-state occupancy refresh rate. Peak memory: CUDA allocator peak on a GPU, "
          "process max RSS on the CPU.", "",
          md_table(rows, cols), "",
          f"Training-step speed-up cuda vs torch: {speedup:.1f}x" if speedup else "Training-step speed-up: n/a (one backend ran)", ""]
    for p in write_results(args.out, f"train_step-{device.type}", payload, "\n".join(md)):
        print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
