"""Shared pieces of the benchmarks: device facts, timing, a tiny synthetic cast, and
result files (JSON + markdown, written via a temp file + rename)."""
from __future__ import annotations

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


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def environment(device: torch.device) -> dict:
    """Device, versions and the exact command of this run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    env = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": platform.python_version(),
        "git_commit": commit,
        "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    try:
        import nerfacc  # noqa: F401

        env["nerfacc"] = nerfacc.__version__
    except Exception:
        env["nerfacc"] = None
    return env


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timeit(fn, device: torch.device, warmup: int = 2, iters: int = 5, min_seconds: float = 0.0) -> float:
    """Median seconds per call of fn() (synchronised)."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    while len(times) < iters or sum(times) < min_seconds:
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
        if len(times) >= 10 * iters:
            break
    return float(np.median(times))


def write_results(out_dir: Path, stem: str, payload: dict, markdown: str) -> list[Path]:
    """Write <stem>.json and <stem>.md atomically; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, text in ((".json", json.dumps(payload, indent=1)), (".md", markdown)):
        path = out_dir / f"{stem}{suffix}"
        tmp = out_dir / f".{stem}{suffix}.tmp-{os.getpid()}"
        tmp.write_text(text)
        os.replace(tmp, path)
        paths.append(path)
    return paths


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


def sphere(subdivisions: int, radius: float = 0.1):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return m.vertices.astype(np.float32), m.faces.astype(np.int32)


def make_cast(root: Path, n_identities: int = 3, n_frames: int = 12, size: int = 64, subdivisions: int = 4) -> Path:
    """A tiny cast in our layout: per identity a sphere "head" whose radius breathes with
    the first expression coefficient, seen by one camera at 0.5 units, rendered as a flat
    disc of the identity's colour (alpha = disc). Returns the cast folder."""
    from fastminerf.data.layout import IdentityWriter

    rng = np.random.default_rng(0)
    v, f = sphere(subdivisions)
    fx = size * 1.5
    c2w = np.eye(4, dtype=np.float32)
    c2w[:3, :3] = np.diag([1, -1, -1])
    c2w[2, 3] = 0.5
    yy, xx = np.mgrid[:size, :size]
    for k in range(n_identities):
        colour = (200, 60 + (150 * k) // max(n_identities - 1, 1), 60)
        with IdentityWriter(root / f"id{k}", n_frames=n_frames, width=size, height=size, intrinsics=(fx, fx, size / 2, size / 2),
                            faces=f, canonical=v, expression_names=[f"e{i}" for i in range(4)], write_obj=False) as w:
            for i in range(n_frames):
                e = rng.normal(size=4).astype(np.float32) * 0.1
                s = 1 + 0.2 * e[0]
                r_px = fx * 0.1 * s / 0.5
                disc = (xx + 0.5 - size / 2) ** 2 + (yy + 0.5 - size / 2) ** 2 < r_px**2
                rgba = np.zeros((size, size, 4), np.uint8)
                rgba[disc] = (*colour, 255)
                w.add(i, rgba, c2w, np.eye(4), v * s, e)
    return root
