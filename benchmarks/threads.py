"""Two trainings side by side on all cores: steps/s alone vs together, OpenMP spin-waiting
(torch's default runtime settings, "before") vs fastminerf's policy (OMP_WAIT_POLICY=PASSIVE
set before torch loads, "after").

    python benchmarks/threads.py --steps 30      # -> benchmarks/results/threads.{json,md}

Each worker is a fresh process (the wait policy is read when the OpenMP runtime loads);
threads = all usable cores in both settings, so the pair oversubscribes the machine 2×.
Ideal: the pair runs at ~0.5× the solo speed each; spin-waiting makes it much worse.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS, ROOT, environment, make_cast, write_results

WORKER = r"""
import os, sys, time, json
policy = sys.argv[1]
wait = "default (spinning)" if policy == "before" else "PASSIVE"
if policy == "before":
    os.environ.pop("OMP_WAIT_POLICY", None)
    import torch  # OpenMP loads with its default (spinning) wait policy
import fastminerf  # sets OMP_WAIT_POLICY=PASSIVE unless torch is loaded already
import torch
from fastminerf.config import load_config
from fastminerf.data.cast import load_cast
from fastminerf.threads import usable_cores
from fastminerf.train.trainer import Trainer
torch.set_num_threads(usable_cores())
cfg = load_config("tiny_cpu", ["data.rays_per_batch=1024", "data.frames_per_batch=8", "render.occupancy_resolution=32"])
t = Trainer(cfg, load_cast([sys.argv[2]]), sys.argv[3])
for _ in range(3):
    t.train_step()
steps, t0 = int(sys.argv[4]), time.perf_counter()
for _ in range(steps):
    t.train_step()
print(json.dumps({"steps_per_s": steps / (time.perf_counter() - t0), "threads": torch.get_num_threads(),
                  "policy": wait}))
"""


def _launch(policy: str, cast: Path, work: Path, steps: int, tag: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.Popen([sys.executable, "-c", WORKER, policy, str(cast), str(work / tag), str(steps)],
                            env=env, stdout=subprocess.PIPE, text=True)


def _speeds(procs: list[subprocess.Popen]) -> list[dict]:
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def measure(steps: int, work: Path) -> dict:
    cast = make_cast(work / "cast", n_identities=2, n_frames=6, size=32, subdivisions=2)
    out = {}
    for policy in ("before", "after"):
        solo = _speeds([_launch(policy, cast, work, steps, f"{policy}-solo")])[0]
        pair = _speeds([_launch(policy, cast, work, steps, f"{policy}-{k}") for k in range(2)])
        mean_pair = sum(p["steps_per_s"] for p in pair) / 2
        out[policy] = dict(solo=solo["steps_per_s"], pair=[p["steps_per_s"] for p in pair], threads=solo["threads"],
                           policy=solo["policy"], slowdown=solo["steps_per_s"] / mean_pair)
    return out


def markdown(res: dict, env: dict) -> str:
    rows = [f"| {k} (OMP_WAIT_POLICY {v['policy']}) | {v['threads']} | {v['solo']:.2f} | "
            f"{v['pair'][0]:.2f} + {v['pair'][1]:.2f} | {v['slowdown']:.2f}× |" for k, v in res.items()]
    return "\n".join([
        "# Two trainings side by side", "",
        f"Command: `{env['command']}`  ", f"Machine: {env['device']}, load average at start {env['load_average']}, "
        f"commit {env['git_commit']}", "",
        "Each process trains the tiny preset (1,024 rays/step, 2 identities at 32²) with one torch thread per usable "
        "core; 'pair' runs two such processes at once. Slowdown = solo steps/s ÷ mean pair steps/s (2× is fair sharing).", "",
        "| setting | threads each | solo steps/s | pair steps/s | slowdown |", "|---|---|---|---|---|", *rows, ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        res = measure(args.steps, Path(tmp))
    for p in write_results(args.out, "threads", {"environment": env, "results": res}, markdown(res, env)):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
