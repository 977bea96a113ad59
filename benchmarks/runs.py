"""Shared pieces of the training benchmarks (train_time.py, ablation.py): CPU-thread policy
under load, the synthetic cast they train on, quality snapshots, power-law fits, and
atomic CSV / PNG / markdown writes (temp file + rename: never a half-written result)."""
from __future__ import annotations

import csv
import gc
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastminerf.data.cast import load_cast
from fastminerf.errors import InputError
from fastminerf.eval.evaluate import evaluate_cast, evaluate_transfer


class BenchError(Exception):
    """A problem the user can fix (bad cast folder, missing extra): printed as one line, exit 2."""


def load_averages() -> list[float]:
    """1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def set_threads(arg: str, device: torch.device) -> tuple[int, str]:
    """Apply the ``--threads`` policy; returns (torch threads, a note for the output).

    "auto": one thread when the 1-minute load average exceeds the core count on a CPU run
    (other jobs share the machine; one thread per process gives steadier timings), else
    torch's default. An integer: that many threads.
    """
    load = os.getloadavg()[0]
    if arg == "auto":
        if device.type == "cpu" and load > cores():
            torch.set_num_threads(1)
            return 1, f"torch.set_num_threads(1): load average {load:.1f} > {cores()} cores"
        return torch.get_num_threads(), f"torch default threads ({torch.get_num_threads()}); load average {load:.1f}"
    torch.set_num_threads(int(arg))
    return int(arg), f"torch.set_num_threads({int(arg)}) (--threads); load average {load:.1f}"


def threads_arg(value: str) -> str:
    """argparse type of ``--threads``: "auto" or a positive integer."""
    if value == "auto" or (value.isdigit() and int(value) > 0):
        return value
    raise ValueError(value)


def require_matplotlib():
    """pyplot on the Agg backend, or BenchError naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BenchError("plots need matplotlib: pip install -e '.[bench]' (or pass --no-plot)") from None
    return plt


def ensure_cast(cast_dir: Path | None, work: Path, n_identities: int, n_frames: int, size: int, seed: int) -> Path:
    """The synthetic cast folder to train on: ``cast_dir`` when given (checked to hold at
    least ``n_identities`` identity folders), else ``work/cast-<N>x<F>-<S>px-seed<K>``,
    synthesized once (without per-frame .obj files) and reused by later runs.

    Identity k of a cast depends only on (seed, k, frames), so the first n identities of a
    bigger cast are the same people as an n-identity cast with the same seed; benchmarks
    train on such prefixes.
    """
    from fastminerf.data.synth.cast import synthesize_cast

    if cast_dir is None:
        cast_dir = work / f"cast-{n_identities}x{n_frames}-{size}px-seed{seed}"
        if not (cast_dir / "cast.json").is_file():
            print(f"synthesizing {n_identities} identities x {n_frames} frames at {size}px -> {cast_dir}", flush=True)
            synthesize_cast(cast_dir, n_identities, n_frames, size, seed, write_obj=False, overwrite=cast_dir.exists())
    have = identity_dirs(cast_dir)
    if len(have) < n_identities:
        raise BenchError(f"{cast_dir}: holds {len(have)} identity folders, the benchmark needs {n_identities}")
    return cast_dir


def identity_dirs(cast_dir: Path) -> list[Path]:
    """The identity folders of a cast folder, sorted by name."""
    if not Path(cast_dir).is_dir():
        raise BenchError(f"{cast_dir}: not a folder")
    return sorted(d for d in Path(cast_dir).iterdir() if (d / "transforms_train.json").is_file())


def cast_facts(cast_dir: Path, cast) -> dict:
    """Path, identities, frames per identity, image size and seed (from cast.json when
    present) of a loaded cast, for the result files."""
    seed = None
    try:
        seed = json.loads((Path(cast_dir) / "cast.json").read_text()).get("seed")
    except (OSError, ValueError):
        pass
    frames = sorted({d.n_frames for d in cast.identities})
    return {"path": str(cast_dir), "identities": cast.n_identities, "frames": frames[0] if len(frames) == 1 else frames,
            "size": cast.width if cast.width == cast.height else f"{cast.width}x{cast.height}", "seed": seed}


def load_subset(dirs: list[Path]):
    """load_cast with InputError turned into BenchError."""
    try:
        return load_cast(dirs)
    except InputError as e:
        raise BenchError(str(e)) from None


def warm_up(cfg, cast, work: Path, device) -> float:
    """A few untimed steps and a one-frame evaluation on ``cast``, so that one-off costs
    (kernel loading and compilation, allocator growth) land on no timed run. Returns seconds."""
    from fastminerf.train.target import heldout_metric
    from fastminerf.train.trainer import Trainer

    t0 = time.perf_counter()
    trainer = Trainer(cfg, cast, work / "runs" / "warm-up", device=device)
    for _ in range(3):
        trainer.train_step()
    heldout_metric(trainer, "psnr", 1)
    del trainer
    gc.collect()
    return time.perf_counter() - t0


@torch.no_grad()
def quality(avatar, cast, driver_cast, background: str = "white", transfer_frames: int | None = None) -> dict:
    """Held-out self-reenactment (all test frames of ``cast``) and cross-identity transfer
    against ground truth, A = every identity of the model, B = every driver in
    ``driver_cast`` (which may hold identities the model never saw). ``transfer_first`` is
    the transfer PSNR of the model's first identity alone (a fixed person across casts)."""
    was_training = avatar.training
    avatar.eval()
    try:
        held = evaluate_cast(avatar, cast, "test", None, background, transfer=False)
        tr = evaluate_transfer(avatar, driver_cast, transfer_frames, background)
    finally:
        avatar.train(was_training)
    first = [v for k, v in tr.get("transfer_pairs", {}).items() if k.startswith(f"{cast.names[0]}<-")]
    return {"heldout_psnr": held["psnr"], "heldout_ssim": held["ssim"], "heldout_psnr_masked": held["psnr_masked"],
            "transfer_psnr": tr.get("transfer_psnr"), "transfer_ssim": tr.get("transfer_ssim"),
            "transfer_first": float(np.mean(first)) if first else None,
            "per_identity": held["per_identity"], "transfer_pairs": tr.get("transfer_pairs", {})}


def fit_power_law(ns, ts) -> dict | None:
    """Least-squares fit of log t = a log N + log c over positive points; None with < 2
    distinct N. Returns {"a", "c", "points"}."""
    pts = [(float(n), float(t)) for n, t in zip(ns, ts) if t is not None and t > 0 and n > 0]
    if len({n for n, _ in pts}) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    a, b = np.polyfit(x, y, 1)
    return {"a": float(a), "c": float(np.exp(b)), "points": len(pts)}


def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    if isinstance(data, bytes):
        tmp.write_bytes(data)
    else:
        tmp.write_text(data)
    os.replace(tmp, path)
    return path


def csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in columns})
    return buf.getvalue()


def figure_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def write_all(out: Path, stem: str, files: dict[str, str | bytes]) -> list[Path]:
    """Write ``<stem><suffix>`` for every suffix → content (".json", ".md", ".csv", ".png"),
    each atomically; content is fully built before the first write."""
    return [write_atomic(out / f"{stem}{suffix}", data) for suffix, data in files.items()]


def dumps(payload: dict) -> str:
    return json.dumps(payload, indent=1, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def fail(msg: str) -> int:
    """Print one error line and return exit code 2."""
    print(f"error: {msg}", file=sys.stderr)
    return 2
