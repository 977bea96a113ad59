"""The one home of what the benchmarks share: the machine they ran on, CPU-thread policy
under load, timing, the casts they train on, quality snapshots, power-law fits and result
files (JSON / markdown / CSV / PNG, each written atomically through fastminerf.files).

Scripts put this checkout first on ``sys.path`` (and ``benchmarks/``), then import from here.
"""
from __future__ import annotations

import csv
import gc
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the tiny test casts (tests/fixtures.py) serve the benchmarks too

import fastminerf  # noqa: E402
from fastminerf.data.cast import load_cast  # noqa: E402
from fastminerf.data.synth.cast import synthesize_cast  # noqa: E402
from fastminerf.errors import InputError  # noqa: E402
from fastminerf.eval.evaluate import evaluate_cast, evaluate_transfer  # noqa: E402
from fastminerf.files import atomic_path, write_text  # noqa: E402
from fastminerf.train.target import heldout_metric  # noqa: E402
from fastminerf.train.trainer import Trainer  # noqa: E402

from fixtures import make_identity, sphere  # noqa: E402

__all__ = ["sphere"]  # re-exported for benchmarks/ops.py


class BenchError(Exception):
    """A problem the user can fix (bad cast folder, missing extra): printed as one line, exit 2."""


def fail(msg: str) -> int:
    """Print one error line and return exit code 2."""
    print(f"error: {msg}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------ the machine
def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def cores() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def load_averages() -> list[float]:
    """1-, 5- and 15-minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


def cpu_model() -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def environment(device: torch.device | None = None) -> dict:
    """The machine, versions and exact command of this run (every result file carries it)."""
    device = device or torch.device("cpu")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda"
        else f"CPU ({cpu_model()}, {cores()} cores, {torch.get_num_threads()} torch threads)",
        "cores": cores(),
        "fastminerf": fastminerf.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": commit,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average": load_averages(),
    }
    try:
        import nerfacc  # optional (the test extra): only its version is recorded

        env["nerfacc"] = nerfacc.__version__
    except Exception:
        env["nerfacc"] = None
    return env


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


# ------------------------------------------------------------------ timing
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_calls(fn, device: torch.device, n: int, warmup: int = 1, max_seconds: float = float("inf")) -> list[float]:
    """Seconds of each of up to ``n`` calls ``fn(k)`` (k = 0..n−1) after ``warmup`` untimed
    calls, synchronised; stops early once ``max_seconds`` are spent (at least one call)."""
    for k in range(warmup):
        fn(-1 - k)
    sync(device)
    times: list[float] = []
    for k in range(n):
        t0 = time.perf_counter()
        fn(k)
        sync(device)
        times.append(time.perf_counter() - t0)
        if sum(times) > max_seconds:
            break
    return times


def timeit(fn, device: torch.device, warmup: int = 2, iters: int = 5, min_seconds: float = 0.0) -> float:
    """Median seconds per call of fn() (synchronised), over ≥ ``iters`` calls and ≥ ``min_seconds``."""
    times = time_calls(lambda k: fn(), device, iters, warmup)
    while sum(times) < min_seconds and len(times) < 10 * iters:
        times += time_calls(lambda k: fn(), device, 1, 0)
    return float(np.median(times))


# ------------------------------------------------------------------ casts
def make_cast(root: Path, n_identities: int = 3, n_frames: int = 12, size: int = 64, subdivisions: int = 4) -> Path:
    """A tiny cast (tests/fixtures.py's breathing-sphere identities, one colour each) in
    ``root``; returns ``root``."""
    for k in range(n_identities):
        colour = (200, 60 + (150 * k) // max(n_identities - 1, 1), 60)
        make_identity(root, f"id{k}", n_frames=n_frames, size=size, subdivisions=subdivisions, seed=k, colour=colour,
                      obj_files=False)
    return root


def ensure_cast(cast_dir: Path | None, work: Path, n_identities: int, n_frames: int, size: int, seed: int) -> Path:
    """The synthetic cast folder to train on: ``cast_dir`` when given (checked to hold at
    least ``n_identities`` identity folders), else ``work/cast-<N>x<F>-<S>px-seed<K>``,
    synthesized once (without per-frame .obj files) and reused by later runs.

    Identity k of a cast depends only on (seed, k, frames), so the first n identities of a
    bigger cast are the same people as an n-identity cast with the same seed; benchmarks
    train on such prefixes.
    """
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


# ------------------------------------------------------------------ training and quality
def warm_up(cfg, cast, work: Path, device) -> float:
    """A few untimed steps and a one-frame evaluation on ``cast``, so that one-off costs
    (kernel loading and compilation, allocator growth) land on no timed run. Returns seconds."""
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
            "heldout_mouth_psnr": held["mouth_psnr"], "heldout_lip_motion": held["lip_motion"],
            "transfer_psnr": tr.get("transfer_psnr"), "transfer_ssim": tr.get("transfer_ssim"),
            "transfer_mouth_psnr": tr.get("transfer_mouth_psnr"), "transfer_lip_motion": tr.get("transfer_lip_motion"),
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


# ------------------------------------------------------------------ result files
def write_atomic(path: Path, data: str | bytes) -> Path:
    """Write ``data`` to ``path`` via a temp file in the same folder + rename."""
    if isinstance(data, bytes):
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        return Path(path)
    return write_text(path, data)


def write_all(out: Path, stem: str, files: dict[str, str | bytes]) -> list[Path]:
    """Write ``<stem><suffix>`` for every suffix → content (".json", ".md", ".csv", ".png"),
    each atomically; content is fully built before the first write."""
    return [write_atomic(Path(out) / f"{stem}{suffix}", data) for suffix, data in files.items()]


def write_results(out_dir: Path, stem: str, payload: dict, markdown: str) -> list[Path]:
    """Write <stem>.json and <stem>.md atomically; returns the paths."""
    return write_all(out_dir, stem, {".json": dumps(payload), ".md": markdown})


def dumps(payload: dict) -> str:
    return json.dumps(payload, indent=1, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def md_table(rows: list[dict], columns: list[str]) -> str:
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |")
    return "\n".join(out)


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


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
