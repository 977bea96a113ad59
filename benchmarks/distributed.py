"""Data-parallel training speed: rays/s and the all-reduce's share of the step, 1 vs N ranks.

    python benchmarks/distributed.py                    # 1 and 2 ranks, gloo on CPU (nccl on GPUs)
    python benchmarks/distributed.py --ranks 1 2 4 8 --config insta_512_gpu --steps 50

    python benchmarks/distributed.py --quality          # held-out PSNR: 1 process vs 2 ranks, same total rays, seeds 0 and 1

Each rank trains ``--rays`` rays per step (weak scaling: N ranks draw N× the rays of one) on its
block of a tiny cast (benchmarks/common.make_cast, one identity per rank at least). The run
with 1 rank is the plain single process (no process group, no all-reduce). Per rank, the
threads are cores ÷ ranks (as ``train --nproc``). Writes ``benchmarks/results/distributed-<dev>.{json,md}``.

``--quality`` trains the demo-sized cast (``fastminerf synth``, 3 identities × 40 frames,
128²) through the CLI twice with the same seed and the same total rays per step — one
process with 2R rays, ``--nproc 2`` with R rays per rank — and compares held-out PSNR on all
test frames (``distributed-quality-<dev>.{json,md}``; issue 15 asks for ±0.3 dB).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
import torch  # noqa: E402

from fastminerf.config import load_config  # noqa: E402
from fastminerf.data.cast import load_cast  # noqa: E402
from fastminerf.train.trainer import Trainer  # noqa: E402

from common import RESULTS, environment, make_cast, md_table, write_results  # noqa: E402

COLUMNS = ["ranks", "rays_per_s", "seconds_per_step", "comm_seconds_per_step", "comm_share",
           "bytes_allreduced_per_step", "params", "grid_params"]


def overrides(args) -> list[str]:
    return [f"data.rays_per_batch={args.rays}", "train.eval_every=0", "train.save_every=0", "train.max_minutes=null"]


def measure(trainer, steps: int, warmup: int) -> dict:
    for _ in range(warmup):
        trainer.train_step()
    comm0 = getattr(trainer, "comm_seconds", 0.0)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    comm = getattr(trainer, "comm_seconds", 0.0) - comm0
    grid = sum(p.numel() for n, p in trainer.avatar.named_parameters() if "grid" in n or "table" in n or "hash" in n)
    total = sum(p.numel() for p in trainer.avatar.parameters() if p.requires_grad)
    return {"seconds_per_step": dt / steps, "comm_seconds_per_step": comm / steps, "comm_share": comm / dt,
            "bytes_allreduced_per_step": getattr(trainer, "bytes_per_step", 0), "params": total, "grid_params": grid}


def worker(args) -> None:
    from fastminerf.train.distributed import prepare_distributed
    tr = prepare_distributed(load_config(args.config, overrides(args)), [args.cast], Path(args.work) / "runs")
    m = measure(tr, args.steps, args.warmup)
    # the slowest rank sets the pace: report rank 0's view after a barrier
    torch.distributed.barrier()
    if tr.rank == 0:
        Path(args.work, "rank0.json").write_text(json.dumps(m))
    torch.distributed.destroy_process_group()


def run_ranks(n: int, args, cast: Path, work: Path) -> dict:
    if n == 1:
        cfg = load_config(args.config, overrides(args))
        torch.set_num_threads(os.cpu_count() or 1)
        tr = Trainer(cfg, load_cast([cast]), work / "one")
        return measure(tr, args.steps, args.warmup)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), __file__,
           "--worker", "--cast", str(cast), "--work", str(work), "--config", args.config, "--rays", str(args.rays),
           "--steps", str(args.steps), "--warmup", str(args.warmup)]
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return json.loads((work / "rank0.json").read_text())


def run_cli(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    subprocess.run([sys.executable, "-m", "fastminerf", *args], check=True, env=env)


def quality(args, env: dict) -> int:
    """1 process × 2R rays vs 2 ranks × R rays on the demo-sized cast, for each seed in
    ``--seeds``; held-out PSNR of each, the per-seed Δ and, as the noise reference, the spread
    of the 1-process runs over the seeds."""
    dev = "gpu" if torch.cuda.is_available() else "cpu"
    common = ["--config", args.config, "--quiet", "--set", f"train.steps={args.quality_steps}",
              "--set", "train.max_minutes=null", "--set", "train.save_every=0", "--set", "train.eval_every=0",
              "--set", "train.final_eval_frames=null"]
    rows = []
    fpb = load_config(args.config).data.frames_per_batch
    with tempfile.TemporaryDirectory() as tmp:
        cast = Path(args.cast) if args.cast else Path(tmp) / "cast"
        if not args.cast:
            run_cli(["synth", "--identities", "3", "--frames", "40", "--size", "128", "--out", str(cast), "--quiet"])
        ids = [str(p) for p in sorted(cast.iterdir()) if (p / "transforms_train.json").exists()]
        for seed in args.seeds:
            for ranks in (1, 2):
                out = Path(tmp) / f"s{seed}n{ranks}"
                # same total rays AND frames per step: both settings are per rank
                extra = ["--set", f"data.rays_per_batch={2 * args.rays // ranks}", "--set", f"train.seed={seed}",
                         "--set", f"data.frames_per_batch={fpb // ranks}"]
                if ranks > 1:
                    extra += ["--nproc", str(ranks)]
                t0 = time.perf_counter()
                run_cli(["train", "--identities", *ids, *common, *extra, "--out", str(out)])
                m = json.loads(next(out.rglob("metrics.json")).read_text())
                rows.append({"seed": seed, "ranks": ranks, "rays_per_rank": 2 * args.rays // ranks, "steps": m["step"],
                             "heldout_psnr": round(m["psnr"], 3),
                             "heldout_mouth_psnr": round(m.get("mouth_psnr", float("nan")), 3),
                             "wall_s": round(time.perf_counter() - t0, 1)})
    one = {r["seed"]: r["heldout_psnr"] for r in rows if r["ranks"] == 1}
    two = {r["seed"]: r["heldout_psnr"] for r in rows if r["ranks"] == 2}
    deltas = {s: round(two[s] - one[s], 3) for s in args.seeds}
    mean_delta = float(np.mean(list(deltas.values())))
    mean_one, mean_two = float(np.mean(list(one.values()))), float(np.mean(list(two.values())))
    spread = float(max(one.values()) - min(one.values())) if len(one) > 1 else None
    env["load_average_after"] = list(os.getloadavg())
    cols = ["seed", "ranks", "rays_per_rank", "steps", "heldout_psnr", "heldout_mouth_psnr", "wall_s"]
    noise = (f" The 1-process runs alone differ by {spread:.3f} dB between seeds (the noise floor of one run)."
             if spread is not None else "")
    md = (f"# Data-parallel quality: 1 process vs 2 ranks ({dev})\n\n`{env['command']}` on {env['device']}, "
          f"load average {env['load_average']} before, {env['load_average_after']} after. Cast: "
          f"`fastminerf synth --identities 3 --frames 40 --size 128` (demo size), config {args.config}, "
          f"same seed for both runs of a pair, same total rays and frames per step, {args.quality_steps} steps, held-out PSNR over all test frames.\n\n"
          + md_table(rows, cols)
          + "\n\nΔ (2 ranks − 1 process) per seed: " + ", ".join(f"seed {s}: {d:+.3f} dB" for s, d in deltas.items())
          + f"; mean over seeds {mean_one:.3f} (1 process) vs {mean_two:.3f} (2 ranks), Δ {mean_delta:+.3f} dB "
          f"(issue 15: within ±0.3 dB).{noise}\n")
    write_results(RESULTS, f"distributed-quality-{dev}", {"environment": env, "rows": rows, "delta_db": deltas,
                                                          "mean_delta_db": mean_delta, "seed_spread_1proc_db": spread}, md)
    print(md)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--config", default="tiny_cpu")
    p.add_argument("--rays", type=int, default=1024, help="rays per step per rank")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--cast", help="cast folder (default: a tiny one, max(ranks) identities)")
    p.add_argument("--quality", action="store_true", help="held-out PSNR of 1 process vs 2 ranks (demo-sized cast)")
    p.add_argument("--quality-steps", type=int, default=500, help="training steps of each --quality run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="--quality: one 1-process/2-rank pair per seed")
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    env = environment()
    if args.quality:
        return quality(args, env)
    with tempfile.TemporaryDirectory() as tmp:
        cast = Path(args.cast) if args.cast else make_cast(Path(tmp) / "cast", n_identities=max(args.ranks), size=64)
        rows = []
        for n in args.ranks:
            work = Path(tmp) / f"r{n}"
            work.mkdir()
            m = run_ranks(n, args, cast, work)
            rows.append({"ranks": n, "rays_per_s": round(n * args.rays / m["seconds_per_step"]), **m})
    dev = "gpu" if torch.cuda.is_available() else "cpu"
    env["load_average_after"] = list(os.getloadavg())
    payload = {"environment": env, "rays_per_rank": args.rays, "config": args.config, "rows": rows}
    md = (f"# Data-parallel training speed ({dev})\n\n`{env['command']}` on {env['device']}, load average "
          f"{env['load_average']} before, {env['load_average_after']} after; {args.rays} rays/step/rank, "
          f"{args.steps} timed steps, config {args.config}.\n\n" + md_table(rows, COLUMNS) + "\n")
    write_results(RESULTS, f"distributed-{dev}", payload, md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
