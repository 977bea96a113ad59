"""The first real-data avatar: preprocess a few real clips, train one model on the CPU, evaluate.

    python benchmarks/real_avatar.py                       # 3 clips of 3 people, 256², real_cpu preset (~15 min)
    python benchmarks/real_avatar.py --clips vretalk_face1 liveportrait_d12 --minutes 5

Runs ``fastminerf preprocess`` (library calls) on clips from ``../shared/data/videos`` into
``--work`` (default ``outputs/real``; kept, so a second run only trains), trains one model on
all of them with ``configs/real_cpu.yaml``, evaluates the held-out frames (last 10 % of each
clip, masked to the head) and renders ``<work>/contact_sheet.png`` (held-out truth | render
| enlarged mouth box, truth | render, per person) and ``<work>/render_<name>.mp4``.

Next to the whole-image numbers: ``mouth_psnr`` and ``lip_motion`` (fastminerf/eval/mouth.py;
the mouth box comes from the seg_mask ids 120/130/140 that preprocessing writes — the
held-out frames with a non-empty box are counted) and, when MediaPipe is installed (the
``preprocess`` extra), the landmark lip motion: the correlation over held-out frames of the
inner-lip opening that MediaPipe finds on the render and on the true frame
(fastminerf/eval/lips.py), and the mean absolute opening error.

The people in these clips did not license their footage to us, so renders stay in
``--work`` (outside the repository); only numbers go to ``benchmarks/results/real_avatar.{json,md}``
(written via temp file + rename).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's package, not an installed one

import torch  # noqa: E402

from common import RESULTS, dumps, environment, fail, load_averages, set_threads, threads_arg, write_all  # noqa: E402  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
DEFAULT_CLIPS = ["vretalk_face2", "vretalk_face3", "vretalk_face5"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=DEFAULT_CLIPS, help="clip stems in --videos (one person each)")
    ap.add_argument("--videos", type=Path, default=SHARED / "videos")
    ap.add_argument("--face-model", type=Path, default=SHARED / "face_models" / "ict-facekit" / "ict-facekit.tar.xz")
    ap.add_argument("--landmarker", type=Path, default=SHARED / "face_models" / "face_landmarker.task")
    ap.add_argument("--size", type=int, default=256, help="crop size of the preprocessed frames")
    ap.add_argument("--config", default="real_cpu", help="training preset")
    ap.add_argument("--minutes", type=float, help="training budget (default: the preset's)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--run", type=Path, help="evaluate this finished training run (folder) instead of training one; "
                                             "its held-out frames are all evaluated")
    ap.add_argument("--threads", type=threads_arg, default="auto")
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "real", help="identities, run and renders go here")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)

    missing = [c for c in a.clips if not (a.videos / f"{c}.mp4").is_file()]
    if missing:
        return fail(f"{a.videos}: no clip {', '.join(missing)} (.mp4); the shared data is needed for this benchmark")
    if not a.face_model.exists():
        return fail(f"{a.face_model}: ICT-FaceKit not found")
    from fastminerf.api import cast_of, load_avatar, render_sequence
    from fastminerf.config import load_config
    from fastminerf.data.preprocess.face_model_ict import load_ict
    from fastminerf.data.preprocess.pipeline import PreprocessOptions, preprocess_video
    from fastminerf.demo import contact_sheet
    from fastminerf.errors import InputError
    from fastminerf.eval.evaluate import evaluate_cast
    from fastminerf.model.checkpoint import latest_checkpoint, load_checkpoint
    from fastminerf.render.video import write_image, write_video
    from fastminerf.train.trainer import train

    threads, _ = set_threads(a.threads, torch.device("cpu"))
    load_before = load_averages()
    data = a.work / "data"
    t0 = time.perf_counter()
    pre = {}
    model = None
    for clip in a.clips:
        if (data / clip / "transforms_train.json").is_file():
            continue
        model = model or load_ict(a.face_model)
        landmarker = str(a.landmarker) if a.landmarker.is_file() else None
        t = time.perf_counter()
        print(f"preprocessing {clip} ...", flush=True)
        try:
            preprocess_video(a.videos / f"{clip}.mp4", data, model,
                             options=PreprocessOptions(size=a.size, landmarker=landmarker, overwrite=True))
        except InputError as e:
            return fail(str(e))
        pre[clip] = round(time.perf_counter() - t, 1)
    overrides = list(a.overrides) + ([f"train.max_minutes={a.minutes}"] if a.minutes is not None else [])
    try:
        if a.run is None:
            cfg = load_config(a.config, overrides)
            run_dir, metrics = train(cfg, [data / c for c in a.clips], a.work / "runs", progress=True)
        else:
            run_dir, metrics = a.run, None
        avatar, cfg = load_avatar(run_dir)
    except InputError as e:
        return fail(str(e))
    cast = cast_of(avatar)
    if metrics is None:  # --run: the held-out evaluation the training run ends with, on every held-out frame
        state = load_checkpoint(latest_checkpoint(run_dir))
        metrics = evaluate_cast(avatar, cast, "test", None, cfg.render.eval_background, transfer=False)
        metrics.update(step=avatar.step, train_seconds=float(state.get("train_seconds", 0.0)))
        overrides = [f"(--run {run_dir}: trained earlier, evaluated now)"]
    write_image(a.work / "contact_sheet.png", contact_sheet(avatar, cast))
    mouth = {}
    for k, name in enumerate(cast.names):
        frames = list(render_sequence(avatar, cast, name, split="test"))
        write_video(a.work / f"render_{name}.mp4", frames, cast.identities[0].fps)
        mouth[name] = mouth_facts(cast, k, frames, a.landmarker, avatar.rc.eval_background)
    env = environment(torch.device("cpu"))
    payload = {"environment": env, "clips": a.clips, "size": a.size, "config": cfg.name, "overrides": overrides,
               "threads": threads, "load_before": load_before, "load_after": load_averages(),
               "preprocess_s": pre, "run": str(run_dir), "metrics": metrics, "mouth": mouth,
               "frames": {n: cast.identities[k].n_frames for k, n in enumerate(cast.names)},
               "total_s": round(time.perf_counter() - t0, 1)}
    lines = [f"# Real-data avatar: {len(a.clips)} preprocessed clips, one model, CPU", "",
             f"`{env['command']}` — {env['device']}, torch {env['torch']}, commit {env['git_commit']}, {env['date']}.", "",
             f"Clips: {', '.join(a.clips)} (`fastminerf preprocess` at {a.size}², ICT-FaceKit + MediaPipe); preset "
             f"`{cfg.name}` {overrides or ''}; {metrics['step']} steps in {metrics['train_seconds']:.0f} s of training. "
             f"Load average before/after: {load_before} / {payload['load_after']}.", "",
             "Held-out = the last 10 % of each clip (expressions and poses the model never saw), rendered with the "
             f"identity's mean latent code on {cfg.render.eval_background}; masked = only where the head matte is.", "",
             "Mouth: `mouth_psnr` = PSNR inside the ground truth's mouth box (seg_mask lips + mouth interior, "
             "ids 120/130/140 from preprocessing, dilated 3 px); `lip_motion` = correlation over the held-out frames of "
             "the pixel mouth opening (truth's mouth-region pixels unlike every face colour of the box), render vs "
             "truth; `landmark lip motion` = the same correlation "
             "for MediaPipe's inner-lip gap / mouth width on render vs frame (— without the `preprocess` extra), "
             "`opening err.` its mean absolute difference.", "",
             "| identity | frames | held-out PSNR | SSIM | masked PSNR | mouth box frames | mouth PSNR | lip motion "
             "| landmark lip motion | opening err. |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, m in metrics["per_identity"].items():
        q = mouth[name]
        lines.append(f"| {name} | {payload['frames'][name]} | {m['psnr']:.2f} | {m['ssim']:.3f} | {m['psnr_masked']:.2f} | "
                     f"{q['box_frames']}/{q['test_frames']} | {num(m.get('mouth_psnr'), 2)} | {num(m.get('lip_motion'), 3)} | "
                     f"{num(q['lip_motion_landmarks'], 3)} | {num(q['opening_error'], 3)} |")
    lm = [q["lip_motion_landmarks"] for q in mouth.values() if q["lip_motion_landmarks"] is not None]
    err = [q["opening_error"] for q in mouth.values() if q["opening_error"] is not None]
    lines += [f"| **mean** | | **{metrics['psnr']:.2f}** | **{metrics['ssim']:.3f}** | **{metrics['psnr_masked']:.2f}** | | "
              f"**{num(metrics.get('mouth_psnr'), 2)}** | **{num(metrics.get('lip_motion'), 3)}** | "
              f"**{num(sum(lm) / len(lm) if lm else None, 3)}** | **{num(sum(err) / len(err) if err else None, 3)}** |", "",
              f"Renders (not committed: the people did not license their footage): `{a.work / 'contact_sheet.png'}`, "
              f"`{a.work}/render_<name>.mp4`."]
    md = "\n".join(lines) + "\n"
    write_all(a.out, "real_avatar", {".json": dumps(payload), ".md": md})
    print(md)
    return 0


def mouth_facts(cast, k: int, rendered: list, landmarker: Path, background: str) -> dict:
    """Identity k's held-out mouth facts: frames with a non-empty ground-truth mouth box, and
    the MediaPipe landmark lip motion of ``rendered`` ([H, W, 3] uint8, its test frames in
    order) vs the true frames on the same ``background`` ("black" or "white") (None each without MediaPipe)."""
    import numpy as np

    from fastminerf.data.layout import read_seg
    from fastminerf.errors import MissingExtra
    from fastminerf.eval.mouth import mouth_box

    d, test = cast.identities[k], cast.frames("test", k)
    boxes = [mouth_box(read_seg(d, int(cast.frame_local[f]))) for f in test]
    out = {"test_frames": len(test), "box_frames": sum(b is not None for b in boxes),
           "lip_motion_landmarks": None, "opening_error": None}
    try:
        from fastminerf.eval.lips import landmark_lip_motion

        bg = np.zeros(3) if background == "black" else np.ones(3)
        truth = []
        for f in test:
            rgba = np.asarray(cast.image(f), np.float32) / 255
            truth.append(((rgba[..., :3] * rgba[..., 3:] + bg * (1 - rgba[..., 3:])) * 255 + 0.5).astype(np.uint8))
        task = str(landmarker) if landmarker.is_file() else None
        out.update(landmark_lip_motion(rendered, truth, d.fps, task))
    except (ImportError, MissingExtra) as e:
        out["landmarks_skipped"] = str(e)
    return out


def num(v, digits: int) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


if __name__ == "__main__":
    sys.exit(main())
