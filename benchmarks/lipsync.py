"""Audio-driven lip sync, offline: audio → mouth coefficients against the tracked ones, baselines,
a feature ablation, speed, and rendered mouths.

    python benchmarks/lipsync.py                      # synthetic cast + real clips (~30 min on 2 cores)
    python benchmarks/lipsync.py --skip-real --skip-render

Writes ``benchmarks/results/lipsync.{json,md}`` (temp file + rename) with the exact command.

- Synthetic: ``fastminerf synth`` cast (its audio.wav is made from the syllables that drive the
  mouth: exact ground truth), cached in ``--work``.
- Real: the speech clips of ``../shared/data/videos`` preprocessed by ``fastminerf preprocess``
  into ``--real`` (see ``benchmarks/preprocess_clips.py``; this script runs the preprocessing
  when the folders are missing).
- Protocols (``fastminerf.lipsync.evaluate``): ``heldout`` = one model on every clip's first
  90 %, scored on the last 10 %; ``loso`` = leave one speaker out, whole clips.
- Rendering: an avatar (``tiny_cpu``) on the synthetic cast renders held-out frames driven by
  the prediction / the baselines / the tracked expressions; mouth-box PSNR against the true
  images, and ``fastminerf lipsync`` on ``vretalk_audio1.wav`` for two identities (audio
  stream length checked).
"""
from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from common import RESULTS, dumps, environment, fail, load_averages, write_all  # noqa: E402  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
SPEECH_CLIPS = ["dfrf_french", "liveportrait_d10", "liveportrait_d11", "liveportrait_d12", "liveportrait_d20",
                "vretalk_face1", "vretalk_face2", "vretalk_face3", "vretalk_face4", "vretalk_face5"]
METHODS = ("model", "energy", "mean")


def ensure_synth(work: Path, n: int, frames: int, size: int) -> Path:
    from fastminerf.data.synth.cast import synthesize_cast

    cast = work / f"synth-{n}x{frames}-{size}px"
    if not (cast / "cast.json").is_file():
        print(f"synthesizing {cast}", flush=True)
        synthesize_cast(cast, n, frames, size, seed=0, write_obj=False, transfer_drivers=0, overwrite=cast.exists(),
                        progress=False)
    return cast


def ensure_real(real: Path, clips: list[str]) -> list[Path]:
    """Preprocessed identity folders of ``clips`` (preprocessing the missing ones at 128²)."""
    from fastminerf.data.preprocess.face_model_ict import load_ict
    from fastminerf.data.preprocess.pipeline import PreprocessOptions, preprocess_video

    model = None
    for c in clips:
        if not (real / c / "transforms_train.json").is_file():
            model = model or load_ict(SHARED / "face_models" / "ict-facekit" / "ict-facekit.tar.xz")
            lm = SHARED / "face_models" / "face_landmarker.task"
            preprocess_video(SHARED / "videos" / f"{c}.mp4", real, model, options=PreprocessOptions(
                size=128, landmarker=str(lm) if lm.is_file() else None, write_meshes=False, overwrite=True))
    return [real / c for c in clips]


def protocol_heldout(clips, cfg, work: Path, tag: str) -> dict:
    """One model on every clip's first 90 %; scores on the last 10 % (pooled)."""
    from fastminerf.lipsync.checkpoint import load_lipsync
    from fastminerf.lipsync.evaluate import evaluate_model
    from fastminerf.lipsync.train import train_lipsync

    path, m = train_lipsync([], work / f"{tag}-heldout.pt", cfg, progress=False, clips=clips)
    lip = load_lipsync(path)
    r = evaluate_model(lip, clips, [~c.is_train for c in clips], [c.name for c in clips],
                       [(c, c.is_train) for c in clips])
    r["train_seconds"] = m["train_seconds"]
    return r


def protocol_loso(clips, cfg, work: Path, tag: str) -> dict:
    """Per speaker: a model on all the others' whole clips scores that speaker's whole clip."""
    from fastminerf.lipsync.checkpoint import load_lipsync
    from fastminerf.lipsync.evaluate import evaluate_model
    from fastminerf.lipsync.train import train_lipsync

    folds = {}
    for k, c in enumerate(clips):
        others = [dataclasses.replace(o, is_train=np.ones(o.n_frames, bool)) for j, o in enumerate(clips) if j != k]
        path, _ = train_lipsync([], work / f"{tag}-loso-{c.name}.pt", cfg, progress=False, clips=others)
        lip = load_lipsync(path)
        folds[c.name] = evaluate_model(lip, [c], [np.ones(c.n_frames, bool)], [None],
                                       [(o, np.ones(o.n_frames, bool)) for o in others])
        print(f"  {tag} loso {c.name}: jaw r model {folds[c.name]['model']['jaw_corr']:.3f} "
              f"energy {folds[c.name]['energy']['jaw_corr']:.3f}", flush=True)
    out = {}
    for meth in METHODS:
        rows = [f[meth] for f in folds.values()]
        offs = [r["offset"] for r in rows if r["offset"] is not None]
        lve = [r["lip_vertex_mm"] for r in rows if r["lip_vertex_mm"] is not None]
        out[meth] = {"jaw_corr": float(np.mean([r["jaw_corr"] for r in rows])),
                     "mouth_mae": float(np.mean([r["mouth_mae"] for r in rows])),
                     "lip_vertex_mm": float(np.mean(lve)) if lve else None,
                     "offset": int(np.median(offs)) if offs else None, "offsets": offs,
                     "per_speaker": {n: f[meth]["jaw_corr"] for n, f in folds.items()}}
    return out


def speed(audio_path: Path, lip_paths: dict, repeats: int = 3) -> dict:
    """Feature extraction + inference time (rendering excluded) on one file, one thread."""
    from fastminerf.lipsync.audio import load_audio
    from fastminerf.lipsync.checkpoint import load_lipsync

    torch.set_num_threads(1)
    a = load_audio(audio_path)
    out = {"audio": audio_path.name, "audio_seconds": round(a.duration, 3)}
    for kind, p in lip_paths.items():
        lip = load_lipsync(p)
        lip.predict(a.samples, a.sample_rate, 25.0)  # warm-up (decoder start-up)
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            lip.predict(a.samples, a.sample_rate, 25.0)
            ts.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_audio(audio_path)
        decode = time.perf_counter() - t0
        out[kind] = {"seconds": round(float(np.median(ts)), 4), "x_real_time": round(a.duration / float(np.median(ts)), 1),
                     "decode_seconds": round(decode, 4),
                     "x_real_time_with_decode": round(a.duration / (float(np.median(ts)) + decode), 1)}
    return out


# ----------------------------------------------------------------------------- rendering

def mouth_box(cast, frame: int, pad: float = 0.35):
    """(y0, y1, x0, x1) pixel box around the projected lip/mouth vertices of a frame."""
    from fastminerf.data.face_model import MOUTH_REGIONS

    lip = np.isin(cast.vertex_regions, MOUTH_REGIONS)
    v = cast.vertices(np.array([frame]))[0][lip]
    h2c = np.linalg.inv(cast.cam_to_head[frame])
    p = v @ h2c[:3, :3].T + h2c[:3, 3]
    fx, fy, cx, cy = cast.intrinsics[frame]
    u, w = fx * p[:, 0] / p[:, 2] + cx, fy * p[:, 1] / p[:, 2] + cy
    du, dw = (u.max() - u.min()) * pad + 2, (w.max() - w.min()) * pad + 2
    H, W = cast.height, cast.width
    return (max(0, int(w.min() - dw)), min(H, int(np.ceil(w.max() + dw))),
            max(0, int(u.min() - du)), min(W, int(np.ceil(u.max() + du))))


def mouth_psnr(img: np.ndarray, gt: np.ndarray, box) -> float:
    """PSNR (dB) inside the mouth box. HOOK: the mouth-fidelity work's metrics (mouth_psnr etc.)
    replace this simple box PSNR when they land."""
    y0, y1, x0, x1 = box
    d = (img[y0:y1, x0:x1].astype(np.float64) - gt[y0:y1, x0:x1].astype(np.float64)) / 255.0
    return float(-10 * np.log10(max(np.mean(d**2), 1e-10)))


def rendered_mouths(avatar, cast, lip_path: Path, clips, names: list[str], max_frames: int) -> dict:
    """Held-out frames of ``names`` rendered with the tracked pose and non-mouth coefficients,
    the mouth from: the lip-sync model, the energy baseline, the mean, the tracked truth."""
    from fastminerf.lipsync.checkpoint import load_lipsync
    from fastminerf.lipsync.evaluate import energy_baseline
    from fastminerf.lipsync.train import speaker_style
    from fastminerf.render.transfer import expression_frames
    from fastminerf.render.video import to_uint8
    from fastminerf.render.views import ViewCamera, background_color, composite_target, render_view

    lip = load_lipsync(lip_path)
    cols = list(lip.indices)
    byname = {c.name: c for c in clips}
    fit = energy_baseline(np.concatenate([c.energy[c.is_train] for c in clips]),
                          np.concatenate([c.expressions[c.is_train][:, cols] for c in clips]))
    mean = np.concatenate([c.expressions[c.is_train][:, cols] for c in clips]).mean(0)
    bg = background_color("white")
    scores = {m: [] for m in ("model", "energy", "mean", "tracked")}
    t_render, n_render = 0.0, 0
    for name in names:
        c = byname[name]
        a = cast.index(name)
        test = cast.frames("test", a)[:max_frames]
        local = cast.frame_local[test]
        mouths = {"model": lip.predict_features(c.features, name, speaker_style(c.expressions[c.is_train][:, cols]))[local],
                  "energy": fit(c.energy)[local], "mean": np.repeat(mean[None], len(local), 0),
                  "tracked": c.expressions[local][:, cols]}
        for meth, mo in mouths.items():
            e = np.array(cast.expressions[test], np.float32)
            e[:, cols] = mo
            fb, _, _ = expression_frames(avatar, cast, a, e)
            for j, f in enumerate(test):
                t0 = time.perf_counter()
                with torch.no_grad():
                    img = render_view(avatar, ViewCamera(torch.from_numpy(cast.cam_to_head[f]),
                                                         torch.from_numpy(cast.intrinsics[f]), cast.height, cast.width),
                                      int(fb.identity[j]), fb.expression[j], fb.latent[j], vertices=fb.vertices[j],
                                      background=bg)
                t_render += time.perf_counter() - t0
                n_render += 1
                gt = to_uint8(composite_target(cast.image(f), bg))
                scores[meth].append(mouth_psnr(img, gt, mouth_box(cast, f)))
    return {"mouth_box_psnr": {m: float(np.mean(v)) for m, v in scores.items()},
            "frames": len(scores["model"]), "render_seconds_per_frame": t_render / max(n_render, 1),
            "image_size": cast.width}


def audio_stream_seconds(mp4: Path) -> dict:
    """Stream durations via ffprobe when installed, else by decoding the audio stream."""
    import shutil

    import imageio_ffmpeg

    out = {}
    if shutil.which("ffprobe"):
        import json

        info = json.loads(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,duration",
                                          "-of", "json", str(mp4)], capture_output=True, text=True).stdout)
        out["ffprobe"] = {s["codec_type"]: float(s["duration"]) for s in info.get("streams", [])}
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-map", "0:a:0", "-f", "s16le",
                          "-ac", "1", "-ar", "16000", "-"], capture_output=True).stdout
    out["decoded_audio_seconds"] = len(raw) / 32000
    return out


def lipsync_command(run: Path, model: Path, identity: str, audio: Path, out: Path, size: int) -> dict:
    """``fastminerf lipsync`` as a user runs it (subprocess): wall time and the mp4's streams."""
    cmd = [sys.executable, "-m", "fastminerf", "lipsync", "--checkpoint", str(run), "--model", str(model),
           "--identity", identity, "--audio", str(audio), "--out", str(out), "--size", str(size), "--threads", "1"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ,
                                                                             "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise RuntimeError(res.stderr.strip()[-500:])
    return {"identity": identity, "wall_seconds": round(wall, 1), "stdout": res.stdout.strip().splitlines()[-2:],
            "streams": audio_stream_seconds(out), "out": str(out)}


# ----------------------------------------------------------------------------- main

def table(rows: list[tuple[str, dict]], with_offset: bool = True) -> list[str]:
    head = "| data / protocol | method | jaw-open r | mouth MAE | lip vertex mm | offset (frames) |"
    lines = [head, "|---|---|---|---|---|---|"]
    for label, r in rows:
        for meth in METHODS:
            m = r[meth]
            lve = "—" if m.get("lip_vertex_mm") is None else f"{m['lip_vertex_mm']:.2f}"
            off = "—" if m.get("offset") is None else str(m["offset"])
            lines.append(f"| {label} | {meth} | {m['jaw_corr']:.3f} | {m['mouth_mae']:.4f} | {lve} | {off} |")
        lines.append(f"| {label} | tracked (ground truth) | 1 | 0 | 0 | 0 |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/lipsync/bench"), help="casts, models, renders (kept)")
    ap.add_argument("--real", type=Path, default=Path("/tmp/lipsync/real"), help="preprocessed real clips (cache)")
    ap.add_argument("--synth", default="6x250x64", help="synthetic cast NxFRAMESxSIZE")
    ap.add_argument("--steps", type=int, default=600, help="lip-sync training steps per model")
    ap.add_argument("--features", nargs="+", default=["mel", "mel+phones"], help="feature kinds to compare")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-render", action="store_true")
    ap.add_argument("--avatar-steps", type=int, default=1500, help="tiny_cpu steps of the synthetic avatar")
    ap.add_argument("--render-frames", type=int, default=6, help="held-out frames per identity rendered per method")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--stem", default="lipsync", help="result file name (default lipsync)")
    ap.add_argument("--merge", type=Path, nargs="*", default=[],
                    help="result .json files of other runs (e.g. another --features) folded into the tables")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    from fastminerf.lipsync.train import LipsyncConfig, load_clip

    a.work.mkdir(parents=True, exist_ok=True)
    env = environment(torch.device("cpu"))
    payload = {"environment": env, "load_before": load_averages(), "steps": a.steps}
    t_all = time.perf_counter()
    n, frames, size = (int(x) for x in a.synth.split("x"))
    synth = ensure_synth(a.work, n, frames, size)
    data = {"synthetic": sorted(d for d in synth.iterdir() if (d / "transforms_train.json").is_file())}
    if not a.skip_real:
        missing = [c for c in SPEECH_CLIPS if not (SHARED / "videos" / f"{c}.mp4").is_file()]
        if missing:
            return fail(f"{SHARED / 'videos'}: no {', '.join(missing)} (the shared data is needed; or --skip-real)")
        data["real"] = ensure_real(a.real, SPEECH_CLIPS)
    results, models = {}, {}
    for dname, dirs in data.items():
        for kind in a.features:
            t0 = time.perf_counter()
            clips = [load_clip(d, kind) for d in dirs]
            cfg = LipsyncConfig(features=kind, steps=a.steps)
            tag = f"{dname}-{kind}"
            print(f"{tag}: {len(clips)} clips, {sum(c.n_frames for c in clips)} frames", flush=True)
            r = {"heldout": protocol_heldout(clips, cfg, a.work, tag), "loso": protocol_loso(clips, cfg, a.work, tag),
                 "clips": {c.name: {"frames": c.n_frames, "fps": c.fps} for c in clips},
                 "seconds": round(time.perf_counter() - t0, 1)}
            results[tag] = r
            models[tag] = a.work / f"{tag}-heldout.pt"
            print(f"{tag}: heldout jaw r {r['heldout']['model']['jaw_corr']:.3f} (energy "
                  f"{r['heldout']['energy']['jaw_corr']:.3f}), loso {r['loso']['model']['jaw_corr']:.3f} "
                  f"(energy {r['loso']['energy']['jaw_corr']:.3f})", flush=True)
    payload["results"] = results
    speech = SHARED / "videos" / "vretalk_audio1.wav"
    if speech.is_file():
        payload["speed"] = speed(speech, {k: models[f"synthetic-{k}"] for k in a.features})
        print("speed", payload["speed"], flush=True)

    if not a.skip_render:
        from fastminerf.api import cast_of, load_avatar
        from fastminerf.config import load_config
        from fastminerf.train.trainer import train

        runs = sorted((a.work / "runs").glob(f"{synth.name}/tiny_cpu/*/checkpoints/step-{a.avatar_steps:09d}.ckpt"))
        if runs:
            run = runs[-1].parent.parent
        else:
            cfg = load_config("tiny_cpu", [f"train.steps={a.avatar_steps}", "train.max_minutes=null", "train.threads=1",
                                           "train.save_every=0", "train.eval_every=0"])
            run, _ = train(cfg, [synth], a.work / "runs", progress=True)
        avatar, _ = load_avatar(run)
        cast = cast_of(avatar)
        kind = a.features[0]
        clips = [load_clip(d, kind) for d in data["synthetic"]]
        payload["render"] = {"run": str(run), **rendered_mouths(avatar, cast, models[f"synthetic-{kind}"], clips,
                                                                  cast.names[:2], a.render_frames)}
        if speech.is_file():
            payload["render"]["lipsync_command"] = [
                lipsync_command(run, models[f"synthetic-{kind}"], name, speech, a.work / f"lipsync_{name}.mp4", 64)
                for name in cast.names[:2]]
        print("render", payload["render"], flush=True)

    payload["load_after"] = load_averages()
    payload["total_seconds"] = round(time.perf_counter() - t_all, 1)
    md = markdown(merged(payload, a), a)
    write_all(a.out, a.stem, {".json": dumps(payload), ".md": md})
    print(md)
    return 0


def merged(payload: dict, a) -> dict:
    """``payload`` with the results (and speed) of the --merge files added; extends a.features."""
    import json

    p = json.loads(dumps(payload))
    for f in a.merge:
        other = json.loads(Path(f).read_text())
        p["results"].update({k: v for k, v in other["results"].items() if k not in p["results"]})
        for k, v in other.get("speed", {}).items():
            p.setdefault("speed", {}).setdefault(k, v)
        p.setdefault("merged", []).append({"file": str(f), "command": other["environment"]["command"],
                                           "total_seconds": other.get("total_seconds")})
        for key in other["results"]:
            kind = key.split("-", 1)[1]
            if kind not in a.features:
                a.features.append(kind)
    return p


def markdown(p: dict, a) -> str:
    env = p["environment"]
    res = p["results"]
    lines = ["# Lip sync from audio: audio → mouth coefficients, offline", "",
             f"`{env['command']}` — {env['device']}, torch {env['torch']}, commit {env['git_commit']}, {env['date']}; "
             f"load average before/after {p['load_before']} / {p.get('load_after')}; {p['total_seconds']:.0f} s in all.", "",
             f"Models: `LipsyncConfig()` defaults, {p['steps']} steps each. **heldout**: one model on the first 90 % of "
             "every clip, scored on the last 10 % of each (pooled); **loso**: leave one speaker out (a model on the "
             "other clips, whole held-out clip, the \"anyone\" speaker code; mean over speakers). jaw-open r = Pearson "
             "correlation with the tracked jawOpen; mouth MAE over the mouth/jaw coefficients; lip vertex mm = mean "
             "lip/mouth-vertex distance through the expression basis; offset = shift maximising the correlation "
             "(0 = in sync). Baselines: energy = least squares on the frame's log audio energy; mean = the training "
             "mean; tracked = the ground truth itself.", ""]
    for m in p.get("merged", []):
        lines += [f"Merged from `{m['file']}` (`{m['command']}`, {m['total_seconds']} s).", ""]
    for kind in a.features:
        rows = [(f"{d} {pr}", res[f"{d}-{kind}"][pr]) for d in ("synthetic", "real") if f"{d}-{kind}" in res
                for pr in ("heldout", "loso")]
        lines += [f"## Features: {kind}", ""] + table(rows) + [""]
    lines += ["## Feature ablation (jaw-open r of the model)", "", "| data / protocol | " + " | ".join(a.features) + " |",
              "|---|" + "---|" * len(a.features)]
    for d in ("synthetic", "real"):
        for pr in ("heldout", "loso"):
            if all(f"{d}-{k}" in res for k in a.features):
                lines.append(f"| {d} {pr} | " + " | ".join(f"{res[f'{d}-{k}'][pr]['model']['jaw_corr']:.3f}"
                                                          for k in a.features) + " |")
    if "real-" + a.features[0] in res:
        r = res["real-" + a.features[0]]["loso"]
        lines += ["", "Real leave-one-speaker-out, per speaker (model / energy): " + ", ".join(
            f"{n} {r['model']['per_speaker'][n]:.2f} / {r['energy']['per_speaker'][n]:.2f}" for n in r["model"]["per_speaker"])]
    if "speed" in p:
        s = p["speed"]
        lines += ["", "## Speed (rendering excluded; one thread)", "",
                  f"{s['audio']} ({s['audio_seconds']} s): " + "; ".join(
                      f"{k}: features + model {s[k]['seconds']:.3f} s = **{s[k]['x_real_time']:.0f}× real time** "
                      f"({s[k]['x_real_time_with_decode']:.0f}× with decoding the file)" for k in a.features if k in s)]
    if "render" in p:
        r = p["render"]
        lines += ["", "## Rendered mouths (synthetic avatar, held-out frames, tracked head pose)", "",
                  f"Avatar `{r['run']}` (tiny_cpu); {r['frames']} frames per method at {r['image_size']}²; "
                  f"{r['render_seconds_per_frame']:.2f} s per frame. mouth-box PSNR = PSNR inside the projected lip box "
                  "(HOOK: the mouth-fidelity metrics replace this column when they land).", "",
                  "| mouth driven by | mouth-box PSNR (dB) |", "|---|---|"]
        for m, v in r["mouth_box_psnr"].items():
            lines.append(f"| {m} | {v:.2f} |")
        for c in r.get("lipsync_command", []):
            st = c["streams"]
            lines.append(f"\n`fastminerf lipsync ... --identity {c['identity']} --audio vretalk_audio1.wav`: "
                         f"{c['wall_seconds']} s wall; audio stream {st.get('ffprobe', {}).get('audio', st['decoded_audio_seconds']):.3f} s "
                         f"(decoded {st['decoded_audio_seconds']:.3f} s), video {st.get('ffprobe', {}).get('video', float('nan')):.3f} s.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
