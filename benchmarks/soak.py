"""Kill / resume soak: SIGKILL a tiny run at random moments, resume it, compare with an
uninterrupted run of the same seed.

Each trial starts ``fastminerf train`` (or ``personalize`` / ``adapt`` on a trained model) as
a real process, sends it SIGKILL after a random delay within the uninterrupted run's
duration (so kills land in steps, checkpoint writes and the final evaluation), then runs
``train --resume RUN`` (or reruns the fine-tune into the same folder) until it exits 0.
Counted: checkpoints that do not load (must be 0), failed resumes (0), temp files left
after the resume, and whether the final weights are bit-identical to the uninterrupted
run's (fixed thread count: ``train.threads=1``).

    python benchmarks/soak.py --trials 24            # -> benchmarks/results/soak.{json,md}
"""
from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from fastminerf.files import TEMP_TAG
from fastminerf.model.checkpoint import latest_checkpoint, load_checkpoint

from common import RESULTS, ROOT, environment, make_cast, write_results

SETTINGS = ["data.rays_per_batch=128", "data.frames_per_batch=4", "render.occupancy_resolution=16", "train.threads=1",
            "train.eval_every=0", "train.max_minutes=null", "train.seed=7"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def _cli(*args: str, kill_after: float | None = None) -> tuple[int, float]:
    """Run ``python -m fastminerf ARGS``; SIGKILL it after ``kill_after`` s. (exit code, seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "fastminerf", *args], cwd=ROOT, env=ENV,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        p.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGKILL)
        p.wait()
    p.stderr.close()
    return p.returncode, time.perf_counter() - t0


def _train_args(cast: Path, out: Path, steps: int, save_every: int) -> list[str]:
    sets = SETTINGS + [f"train.steps={steps}", f"train.save_every={save_every}"]
    return ["train", "--identities", str(cast), "--out", str(out), "--quiet", *sum((["--set", s] for s in sets), [])]


def _run_dir(out: Path) -> Path | None:
    dirs = [p.parent for p in out.rglob("config.yml")]
    return dirs[0] if dirs else None


def _audit(root: Path) -> tuple[int, int]:
    """(checkpoints under ``root`` that do not load, temp files left under ``root``)."""
    bad = 0
    for p in root.rglob("*.ckpt"):
        if TEMP_TAG in p.name:
            continue
        try:
            load_checkpoint(p)
        except Exception:
            bad += 1
    return bad, sum(1 for p in root.rglob(f"*{TEMP_TAG}*"))


def _weights(ckpt: Path) -> dict:
    return load_checkpoint(ckpt)["model"]


def _identical(a: dict, b: dict) -> tuple[bool, float]:
    diff = max((float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0.0) for k in a)
    return all(torch.equal(a[k], b[k]) for k in a), diff


def train_trial(cast: Path, work: Path, steps: int, save_every: int, kill_after: float, reference: dict) -> dict:
    """One kill-then-resume trial of ``train``."""
    out = work / "runs"
    rc, _ = _cli(*_train_args(cast, out, steps, save_every), kill_after=kill_after)
    killed = rc != 0
    unloadable, temps_after_kill = _audit(out) if out.exists() else (0, 0)
    run = _run_dir(out) if out.exists() else None
    resumes, failed = 0, 0
    while True:
        has_ckpt = run is not None and any((run / "checkpoints").glob("step-*.ckpt"))
        if has_ckpt:
            rc, _ = _cli("train", "--identities", str(cast), "--quiet", "--resume", str(run))
        else:  # killed before the first checkpoint: start again
            shutil.rmtree(out, ignore_errors=True)
            rc, _ = _cli(*_train_args(cast, out, steps, save_every))
            run = _run_dir(out)
        resumes += 1
        if rc == 0:
            break
        failed += 1
        if resumes > 3:
            break
    bad_after, temps_left = _audit(out)
    same, diff = _identical(reference, _weights(latest_checkpoint(run)))
    return dict(kind="train", kill_after_s=round(kill_after, 2), killed=killed, unloadable=unloadable + bad_after,
                temps_after_kill=temps_after_kill, temps_left=temps_left, resumes=resumes, failed_resumes=failed,
                bit_identical=same, max_abs_diff=diff)


def finetune_trial(kind: str, base_run: Path, cast: Path, work: Path, kill_after: float) -> dict:
    """Kill ``personalize``/``adapt`` mid-run, rerun it into the same folder: the base model is
    untouched, every checkpoint loads, no temp file is left."""
    before = latest_checkpoint(base_run).read_bytes()
    out = work / kind
    if kind == "adapt":  # a new person: id0's frames under a name the model does not know
        newcomer = work / "new" / "newcomer"
        shutil.copytree(cast / "id0", newcomer, dirs_exist_ok=True)
    args = (["personalize", "--checkpoint", str(base_run), "--identity", "id0"] if kind == "personalize" else
            ["adapt", "--checkpoint", str(base_run), "--data", str(newcomer)])
    args += ["--steps", "20", "--eval-frames", "1", "--out", str(out), "--quiet"]
    rc, _ = _cli(*args, kill_after=kill_after)
    killed = rc != 0
    unloadable, temps_after_kill = _audit(out) if out.exists() else (0, 0)
    rc, _ = _cli(*args)
    bad_after, temps_left = _audit(out)
    return dict(kind=kind, kill_after_s=round(kill_after, 2), killed=killed, unloadable=unloadable + bad_after,
                temps_after_kill=temps_after_kill, temps_left=temps_left, resumes=1, failed_resumes=int(rc != 0),
                bit_identical=latest_checkpoint(base_run).read_bytes() == before, max_abs_diff=0.0)


def soak(trials: int, steps: int = 60, save_every: int = 6, seed: int = 0, finetune_every: int = 5,
         work: Path | None = None) -> dict:
    """Run the soak; returns the summary and the per-trial rows."""
    rng = random.Random(seed)
    work = Path(work or tempfile.mkdtemp(prefix="soak-"))
    cast = make_cast(work / "cast", n_identities=2, n_frames=6, size=24, subdivisions=1)
    ref_out = work / "reference"
    rc, t_ref = _cli(*_train_args(cast, ref_out, steps, save_every))
    if rc != 0:
        raise SystemExit(f"reference run failed (exit {rc})")
    ref_run = _run_dir(ref_out)
    reference = _weights(latest_checkpoint(ref_run))
    _, t_ft = _cli("personalize", "--checkpoint", str(ref_run), "--identity", "id0", "--steps", "20", "--eval-frames", "1",
                   "--out", str(work / "ft-timing"), "--quiet")
    rows = []
    for k in range(trials):
        d = work / f"trial{k:03d}"
        if finetune_every and k % finetune_every == finetune_every - 1:
            kind = "personalize" if (k // finetune_every) % 2 == 0 else "adapt"
            rows.append(finetune_trial(kind, ref_run, cast, d, rng.uniform(0.4, 0.95) * t_ft))
        else:
            rows.append(train_trial(cast, d, steps, save_every, rng.uniform(0.25, 0.97) * t_ref, reference))
        shutil.rmtree(d, ignore_errors=True)
        print(rows[-1], flush=True)
    train_rows = [r for r in rows if r["kind"] == "train"]
    summary = dict(trials=len(rows), killed=sum(r["killed"] for r in rows), unloadable=sum(r["unloadable"] for r in rows),
                   failed_resumes=sum(r["failed_resumes"] for r in rows),
                   temps_after_kill=sum(r["temps_after_kill"] for r in rows), temps_left=sum(r["temps_left"] for r in rows),
                   train_bit_identical=sum(r["bit_identical"] for r in train_rows), train_trials=len(train_rows),
                   max_abs_diff=max((r["max_abs_diff"] for r in train_rows), default=0.0),
                   reference_seconds=round(t_ref, 2), finetune_seconds=round(t_ft, 2), steps=steps, save_every=save_every)
    shutil.rmtree(work, ignore_errors=True)
    return {"summary": summary, "trials": rows}


def markdown(res: dict, env: dict) -> str:
    s = res["summary"]
    lines = [
        "# Kill / resume soak", "",
        f"Command: `{env['command']}`  ", f"Machine: {env['device']}, load average {env['load_average']}, commit {env['git_commit']}", "",
        f"A tiny run (2 identities × 6 frames, 24², {s['steps']} steps, a checkpoint every {s['save_every']}, "
        f"`train.threads=1`, seed 7; uninterrupted: {s['reference_seconds']} s incl. start-up and final evaluation) "
        "is SIGKILLed after a random delay, then `train --resume RUN` until exit 0 (every 5th trial: "
        f"`personalize`/`adapt`, {s['finetune_seconds']} s uninterrupted, killed then rerun into the same folder).", "",
        "| measure | value |", "|---|---|",
        f"| trials (killed before exit) | {s['trials']} ({s['killed']}) |",
        f"| unloadable checkpoints | {s['unloadable']} |",
        f"| failed resumes | {s['failed_resumes']} |",
        f"| temp files left by the kills | {s['temps_after_kill']} |",
        f"| temp files left after the resume | {s['temps_left']} |",
        f"| train trials with final weights bit-identical to the uninterrupted run | {s['train_bit_identical']} / {s['train_trials']} |",
        f"| largest weight difference | {s['max_abs_diff']:.3g} |", "",
        "| # | kind | killed at (s) | killed | unloadable | temps after kill | temps left | resumes | bit-identical |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(res["trials"]):
        lines.append(f"| {i} | {r['kind']} | {r['kill_after_s']} | {r['killed']} | {r['unloadable']} | {r['temps_after_kill']} "
                     f"| {r['temps_left']} | {r['resumes']} | {r['bit_identical']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    env = environment()
    res = soak(args.trials, steps=args.steps, seed=args.seed)
    for p in write_results(args.out, "soak", {"environment": env, **res}, markdown(res, env)):
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
