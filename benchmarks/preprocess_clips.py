"""Preprocess every clip in ../shared/data/videos and tabulate the landmark fit.

    python benchmarks/preprocess_clips.py [--size 512] [--keep DIR]

Writes ``benchmarks/results/preprocess_clips.md`` (the table in docs/preprocess.md) and
``.json`` (``preprocess_clips_facemesh.*`` with ``--no-landmarker``) (written to temporary names, then renamed: never half-written). Identities go to
a temporary folder that is deleted at the end unless ``--keep DIR`` is given (the people
in the clips did not license their footage: keep renders out of the repository).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

from common import environment, write_results  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", type=Path, default=SHARED / "videos")
    ap.add_argument("--face-model", type=Path, default=SHARED / "face_models" / "ict-facekit" / "ict-facekit.tar.xz")
    ap.add_argument("--landmarker", type=Path, default=SHARED / "face_models" / "face_landmarker.task")
    ap.add_argument("--no-landmarker", action="store_true", help="legacy Face Mesh only (no ARKit scores)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--only", nargs="*", help="clip stems to run (default: all)")
    ap.add_argument("--keep", type=Path, help="keep the identity folders here")
    ap.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    a = ap.parse_args(argv)

    from fastminerf.data.preprocess.face_model_ict import load_ict
    from fastminerf.data.preprocess.pipeline import PreprocessOptions, preprocess_video

    clips = sorted(p for p in a.videos.glob("*.mp4") if not a.only or p.stem in a.only)
    if not clips:
        print(f"no clips under {a.videos}", file=sys.stderr)
        return 2
    landmarker = None if a.no_landmarker or not a.landmarker.is_file() else str(a.landmarker)
    t = time.perf_counter()
    model = load_ict(a.face_model)
    model_s = time.perf_counter() - t
    work = a.keep or Path(tempfile.mkdtemp(prefix="fastminerf-bench-"))
    rows = []
    try:
        for clip in clips:
            out = preprocess_video(clip, work, model, options=PreprocessOptions(size=a.size, landmarker=landmarker, overwrite=True))
            s = json.loads((out / "qa" / "summary.json").read_text())
            rows.append({k: s[k] for k in ("frames", "fps", "error_pct_median", "error_pct_p95", "focal_source_px",
                                           "frames_per_second", "timings_s", "face_found_fraction")} | {"clip": clip.stem})
    finally:
        if a.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    frames = sum(r["frames"] for r in rows)
    secs = sum(r["timings_s"]["total"] for r in rows)
    env = environment()
    machine = f"{env['device']}, Python {env['python']}"
    cmd = "python benchmarks/preprocess_clips.py" + (f" --size {a.size}" if a.size != 512 else "") + (" --no-landmarker" if landmarker is None else "")
    lines = [f"Command: `{cmd}` — machine: {machine}; output {a.size}²; "
             f"landmarker: {'face_landmarker.task' if landmarker else 'legacy Face Mesh'}; "
             f"ICT model load {model_s:.1f} s (cached .npz after the first run).", "",
             "| clip | frames | fps | processed frames/s | median error % | p95 error % | focal (source px) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['clip']} | {r['frames']} | {r['fps']:g} | {r['frames_per_second']:.1f} | "
                     f"{r['error_pct_median']:.2f} | {r['error_pct_p95']:.2f} | {r['focal_source_px']:.0f} |")
    lines += ["", f"All clips: {frames} frames in {secs:.0f} s = **{frames / secs:.1f} frames/s** end to end "
                  f"(decode, track, fit, crop, matte, seg, write PNG + OBJ + cache, QA). "
                  f"Worst median error {max(r['error_pct_median'] for r in rows):.2f}% of face height."]
    stem = "preprocess_clips" + ("" if landmarker else "_facemesh")
    write_results(a.results, stem, {"machine": machine, "environment": env, "command": cmd, "rows": rows}, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
