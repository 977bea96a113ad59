"""Synthetic-cast speed: time to synthesize a cast and to load it back.

Runs ``synthesize_cast`` (the library behind ``fastminerf synth``) for N identities × F frames
at S², then ``fastminerf.data.layout.read_identity`` on every identity folder (cold: first
read after writing; warm: a second pass), and writes JSON + markdown under
benchmarks/results/ with the exact command, the machine and library versions.

    python benchmarks/synth_time.py [--identities 10] [--frames 200] [--size 256] [--workers W]
                                    [--out /tmp/fastminerf-synth-bench] [--keep] [--no-obj]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import numpy as np  # noqa: E402

from fastminerf.data.layout import read_identity  # noqa: E402
from fastminerf.data.synth.cast import synthesize_cast  # noqa: E402
from fastminerf.data.synth.head import build_synth_head  # noqa: E402

from common import environment, load_averages, write_results  # noqa: E402


def _cpu() -> float:
    """CPU seconds (user + system) of this process and its finished children (the workers)."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identities", type=int, default=10)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/fastminerf-synth-bench"))
    ap.add_argument("--results", type=Path, default=Path(__file__).parent / "results")
    ap.add_argument("--keep", action="store_true", help="keep the cast folder")
    ap.add_argument("--no-obj", action="store_true")
    args = ap.parse_args(argv)
    machine = {**environment(), "load_average_before": load_averages()}

    t0 = time.perf_counter()
    head = build_synth_head()
    t_model = time.perf_counter() - t0
    r0 = _cpu()
    t0 = time.perf_counter()
    paths = synthesize_cast(args.out, args.identities, args.frames, args.size, seed=0, overwrite=True,
                            write_obj=not args.no_obj, workers=args.workers, progress=False)
    t_synth = time.perf_counter() - t0
    cpu_synth = _cpu() - r0
    total_frames = sum(read_identity(p).n_frames for p in paths)
    transfer = sorted(p for p in args.out.glob("id*/transfer/*") if p.is_dir())
    total_frames += sum(read_identity(p).n_frames for p in transfer)

    loads = {}
    for label in ("cold", "warm"):
        t0 = time.perf_counter()
        for p in paths:
            d = read_identity(p)
            np.asarray(d.images[-1])  # touch the image cache
        loads[label] = time.perf_counter() - t0
    size_mb = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file()) / 2**20
    command = " ".join(["python benchmarks/synth_time.py", *argv])
    result = {
        "command": command,
        "identities": args.identities, "frames_per_identity": args.frames, "size": args.size,
        "workers": args.workers or machine["cores"], "meshes_written": not args.no_obj,
        "frames_rendered": total_frames, "transfer_folders": len(transfer),
        "head_model_build_s": round(t_model, 2),
        "synthesize_s": round(t_synth, 2),
        "ms_per_frame_wall": round(1000 * t_synth / total_frames, 1),
        "synthesize_cpu_s": round(cpu_synth, 1),
        "ms_cpu_per_frame": round(1000 * cpu_synth / total_frames, 1),
        "load_all_identities_s": {k: round(v, 3) for k, v in loads.items()},
        "dataset_mb": round(size_mb, 1),
        "machine": {**machine, "load_average_after": load_averages()},
        "fastminerf_head": {"vertices": head.model.n_vertices, "faces": int(head.model.faces.shape[0])},
    }
    print(json.dumps(result, indent=1))
    stem = f"synth_time_{args.identities}x{args.frames}_{args.size}"
    md = [
        f"# Synthetic cast: {args.identities} identities × {args.frames} frames at {args.size}²",
        "",
        f"Command: `{command}` (from the repository root)",
        "",
        f"Machine: {machine['device']}; Python {machine['python']}, numpy {machine['numpy']}; "
        f"load average before/after: {machine['load_average_before']} / "
        f"{result['machine']['load_average_after']} (other jobs share this machine).",
        "",
        "| what | value |",
        "|---|---|",
        f"| frames rendered (own sequences + {len(transfer)} transfer folders) | {total_frames} |",
        f"| head model build (once per process) | {t_model:.2f} s |",
        f"| synthesize (`fastminerf synth`, {result['workers']} workers, meshes {'on' if not args.no_obj else 'off'}) | "
        f"{t_synth:.1f} s wall ({result['ms_per_frame_wall']} ms/frame) |",
        f"| CPU time of that run, all processes (wall on an idle machine ≈ this / cores) | "
        f"{cpu_synth:.1f} s ({result['ms_cpu_per_frame']} ms/frame) |",
        f"| load all {args.identities} identities with `read_identity` (first / second pass) | "
        f"{loads['cold']:.3f} s / {loads['warm']:.3f} s |",
        f"| dataset size | {size_mb:.0f} MB |",
        "",
    ]
    write_results(args.results, stem, result, "\n".join(md))
    if not args.keep:
        shutil.rmtree(args.out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
