"""Conditioning ablation with ground truth: MI-NeRF's Table 1 on the synthetic cast.

    python benchmarks/ablation.py --cpu-tiny                     # every variant, 300 steps, 3 identities at 64²
    python benchmarks/ablation.py                                # GPU: 10 identities at 256², 10000 steps
    python benchmarks/ablation.py --variants M,H2,baseline --steps 2000 --cast DIR
    python benchmarks/ablation.py --cpu-demo --variants mouth --mouth lips-only    # the mouth table at the demo size
    python benchmarks/ablation.py --cpu-demo --variants mouth --identities 4 --frames 60 \
        --variant mouthfix:data.mouth_fraction=0.2          # + a variant given as overrides over M

Trains every conditioning variant (configs/variants/: baseline, A1–A7, M with k = 8 and 32,
H with N = 2, 3, 4, M without latent codes, and the extras) on the same synthetic cast
with the same budget in steps (not wall time, so machine load does not bias the
comparison; the time is recorded too), then reports held-out self-reenactment PSNR/SSIM and
cross-identity transfer PSNR/SSIM against the cast's ground truth — the paper's Table 1
with ground truth in place of a face-recognition distance — and, next to them, the mouth:
``mouth_psnr`` (PSNR inside the ground truth's lips + mouth-interior box) and ``lip_motion``
(correlation over frames of rendered vs true mouth opening) held out and in transfer
(fastminerf/eval/mouth.py). ``--variants mouth`` is the issue-13 subset (M, baseline,
concat_learned, M_nodrop); ``--variant NAME[@PRESET]:KEY=VALUE,...`` adds a variant made of
overrides over a preset (default M); ``--mouth lips-only`` trains on the cast re-written
with FLAME-like meshes that have no mouth pocket (``fastminerf synth --mouth lips-only``). The reference variant M is
trained again with other seeds (``--noise-seeds``): the spread is the noise floor of the
table. The variants' own settings are applied over the mode's base preset
(:func:`fastminerf.config.load_variant`), so the GPU table uses insta_512_gpu.

Also measures rendering speed (frames/s at 256² and 512²) of the trained M model on the
backend the config resolves to (cuda kernels when present, else the torch twins).

Writes ablation-<mode>[-lips-only].json/.md/.csv into --out (default benchmarks/results/), each via a
temp file + rename, with the device, versions, load averages and exact command.
"""
from __future__ import annotations

import argparse
import gc
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fastminerf.config import load_variant, variant_names  # noqa: E402
from fastminerf.data.synth.lips_only import lips_only_cast  # noqa: E402
from fastminerf.errors import InputError  # noqa: E402
from fastminerf.files import commit_dir, temp_dir  # noqa: E402
from fastminerf.model.frames import frames_from_cast  # noqa: E402
from fastminerf.render.views import background_color, render_image  # noqa: E402
from fastminerf.train.trainer import Trainer  # noqa: E402

from common import (  # noqa: E402  # noqa: E402
    RESULTS,
    BenchError,
    cast_facts,
    csv_text,
    dumps,
    ensure_cast,
    environment,
    fail,
    identity_dirs,
    load_averages,
    load_subset,
    md_table,
    pick_device,
    quality,
    set_threads,
    threads_arg,
    time_calls,
    warm_up,
    write_all,
)

#: the variant presets of configs/variants/ (what each is: its ``description``), in table order
VARIANTS = {name: load_variant(name).description for name in variant_names()}
REFERENCE = "M"
#: ``--variants mouth``: the MI-NeRF Table 1 subset issue 13 re-runs on the mouth
MOUTH_SET = ["M", "baseline", "concat_learned", "M_nodrop"]
MODES = {
    "cpu-tiny": dict(identities=3, frames=60, size=64, base="tiny_cpu", steps=300, transfer_frames=3,
                     overrides=["data.rays_per_batch=1024", "data.frames_per_batch=16"], render_frames=1),
    "cpu-demo": dict(identities=3, frames=40, size=128, base="tiny_cpu", steps=1500, transfer_frames=None,
                     overrides=[], render_frames=0),
    "gpu": dict(identities=10, frames=100, size=256, base="insta_512_gpu", steps=10000, transfer_frames=None,
                overrides=[], render_frames=20),
}
MOUTH_KEYS = ["heldout_mouth_psnr", "heldout_lip_motion", "transfer_mouth_psnr", "transfer_lip_motion"]
CSV_COLUMNS = ["variant", "seed", "description", "cond_params", "steps", "heldout_psnr", "heldout_ssim",
               "heldout_psnr_masked", "transfer_psnr", "transfer_ssim", *MOUTH_KEYS, "train_s", "cpu_s", "loss",
               "threads", "load_before", "load_after"]
#: one override in a ``--variant`` list starts a new ``section.field=``
_OVERRIDE_START = re.compile(r",(?=\s*[A-Za-z_]+\.[A-Za-z_0-9]+\s*=)")


def variant_list(text: str) -> list[str]:
    """argparse type: comma-separated variant names, each from :data:`VARIANTS` ("mouth" =
    :data:`MOUTH_SET`)."""
    known = list(VARIANTS)
    names = [y for x in text.split(",") if x.strip() for y in (MOUTH_SET if x.strip() == "mouth" else [x.strip()])]
    bad = [x for x in names if x not in known]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {', '.join(bad) or '(none given)'}; choose from {', '.join(known)}")
    return list(dict.fromkeys(names))


def custom_variant(text: str) -> tuple[str, str, list[str]]:
    """argparse type of ``--variant NAME[@PRESET]:KEY=VALUE,KEY=VALUE``: (name, preset,
    overrides); the preset defaults to the reference variant M. A value may itself hold
    commas (a new override starts at ``,section.field=``)."""
    head, sep, rest = text.partition(":")
    name, _, preset = head.strip().partition("@")
    preset = preset.strip() or REFERENCE
    overrides = [x.strip() for x in _OVERRIDE_START.split(rest) if x.strip()]
    if not sep or not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not overrides:
        raise argparse.ArgumentTypeError(f"expected NAME[@PRESET]:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    if name in VARIANTS:
        raise argparse.ArgumentTypeError(f"{name!r} is a preset variant's name; pick another")
    if preset not in VARIANTS:
        raise argparse.ArgumentTypeError(f"unknown preset {preset!r}; choose from {', '.join(VARIANTS)}")
    bad = [x for x in overrides if "=" not in x]
    if bad:
        raise argparse.ArgumentTypeError(f"override {bad[0]!r} is not KEY=VALUE")
    return name, preset, overrides


def int_list(text: str) -> list[int]:
    try:
        v = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not v or min(v) < 16:
        raise argparse.ArgumentTypeError(f"render sizes must be ≥ 16, got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Defaults in brackets are the GPU / --cpu-tiny values.")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--cpu-tiny", action="store_true", help="the CPU mode: 3 identities at 64², 300 steps per variant")
    mode.add_argument("--cpu-demo", action="store_true",
                      help="the demo's size on the CPU: 3 identities x 40 frames at 128², tiny_cpu, 1500 steps, "
                           "every transfer frame, no render-speed section")
    ap.add_argument("--variants", type=variant_list, default=list(VARIANTS),
                    help="comma-separated subset of: " + ", ".join(VARIANTS) + "; 'mouth' = " + ",".join(MOUTH_SET))
    ap.add_argument("--variant", dest="custom", type=custom_variant, action="append", default=[],
                    metavar="NAME[@PRESET]:KEY=VALUE,...",
                    help=f"an extra variant: these overrides over PRESET (default {REFERENCE}), e.g. "
                         "mouthfix:data.mouth_fraction=0.2 (repeatable; trained after --variants)")
    ap.add_argument("--mouth", choices=["pocket", "lips-only"], default="pocket",
                    help="pocket: the synthetic cast as is; lips-only: its tracked meshes re-written without the "
                         "mouth pocket, like FLAME (a copy under --work)")
    ap.add_argument("--smoke", action="store_true",
                    help="label the result files a smoke test (format check, not results): stem gets '-smoke'")
    ap.add_argument("--steps", type=positive_int, help="training steps per variant [10000 / 300]")
    ap.add_argument("--noise-seeds", type=int, default=1,
                    help=f"extra seeds of the reference variant {REFERENCE} (the table's noise floor; 0 = none)")
    ap.add_argument("--cast", type=Path, help="reuse this cast folder (all its identities are trained)")
    ap.add_argument("--identities", type=positive_int, help="identities of the synthesized cast [10 / 3]")
    ap.add_argument("--frames", type=positive_int, help="frames per identity of the synthesized cast [100 / 60]")
    ap.add_argument("--size", type=positive_int, help="image size of the synthesized cast [256 / 64]")
    ap.add_argument("--seed", type=int, default=0, help="synthesis seed")
    ap.add_argument("--base", help="base preset the variants are applied to [insta_512_gpu / tiny_cpu]")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for every variant (repeatable)")
    ap.add_argument("--transfer-frames", type=positive_int, help="frames per transfer pair [all / 3]")
    ap.add_argument("--render-sizes", type=int_list, default=[256, 512], help="render-speed image sizes (default 256,512)")
    ap.add_argument("--render-frames", type=int, help="timed frames per size [20 / 1]; 0 skips the render-speed section")
    ap.add_argument("--threads", type=threads_arg, default="auto",
                    help="torch CPU threads: 'auto' (1 when the load average exceeds the cores) or N")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: cuda when present")
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench", help="where synthesized casts are kept")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    ap.add_argument("--stem", help="result file stem [ablation-<mode>[-<N>x<F>-<S>px when not the mode's cast]"
                                   "[-lips-only][-smoke]]")
    return ap


def resolve_args(ap: argparse.ArgumentParser, argv) -> argparse.Namespace:
    args = ap.parse_args(argv)
    args.mode = "cpu-tiny" if args.cpu_tiny else "cpu-demo" if args.cpu_demo else "gpu"
    mode = MODES[args.mode]
    for k in ("identities", "frames", "size", "base", "steps", "render_frames", "transfer_frames"):
        if getattr(args, k) is None:
            setattr(args, k, mode[k])
    args.mode_overrides = mode["overrides"] if args.base == mode["base"] else []
    if args.noise_seeds < 0:
        ap.error(f"--noise-seeds must be ≥ 0, got {args.noise_seeds}")
    if args.render_frames < 0:
        ap.error(f"--render-frames must be ≥ 0, got {args.render_frames}")
    if args.size < 32:
        ap.error(f"--size must be at least 32, got {args.size}")
    if args.identities < 2 and args.cast is None:
        ap.error("--identities must be at least 2 (transfer needs a driver)")
    asked = args.device
    args.device = pick_device(asked or "auto")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    if args.mode == "gpu" and args.device.type == "cpu" and asked is None:
        ap.error("no CUDA device: the full table needs a GPU; pass --cpu-tiny (or --device cpu to insist)")
    args.custom = {name: (preset, overrides) for name, preset, overrides in args.custom}
    args.variants = list(args.variants) + [v for v in args.custom if v not in args.variants]
    cast_size = (args.identities, args.frames, args.size)
    other_cast = args.cast is None and cast_size != tuple(mode[k] for k in ("identities", "frames", "size"))
    suffix = ("-{}x{}-{}px".format(*cast_size) if other_cast else "") + ("-lips-only" if args.mouth == "lips-only" else "") \
        + ("-smoke" if args.smoke else "")
    args.stem = args.stem or f"ablation-{args.mode}{suffix}"
    return args


def describe(name: str, args) -> str:
    """What a variant is: its preset's description, or its overrides over a preset."""
    if name in getattr(args, "custom", {}):
        preset, overrides = args.custom[name]
        return f"{preset} + " + ", ".join(overrides)
    return VARIANTS[name]


def variant_config(name: str, seed: int, args):
    fixed = [f"train.steps={args.steps}", "train.eval_every=0", "train.save_every=0", "train.max_minutes=null",
             f"train.seed={seed}"]
    base = None if args.base == "tiny_cpu" else args.base  # the variant presets inherit tiny_cpu themselves
    preset, own = args.custom.get(name, (name, []))
    try:
        return load_variant(preset, base, args.mode_overrides + args.overrides + own + fixed)
    except InputError as e:
        raise BenchError(str(e)) from None


def lips_only_copy(cast_dir: Path, work: Path) -> Path:
    """``work/<cast name>-lips-only``: a copy of synthetic cast ``cast_dir`` with its tracked
    meshes re-written without the mouth pocket (INSTA layout, like FLAME), made once (in a
    temp folder, then renamed) and reused."""
    dst = Path(work) / f"{Path(cast_dir).name}-lips-only"
    if dst.is_dir() and identity_dirs(dst):  # only a finished copy is ever renamed to dst
        return dst
    if not any((d / "vertex_regions.npy").is_file() for d in identity_dirs(cast_dir)):
        raise BenchError(f"{cast_dir}: no identity has vertex_regions.npy (a mouth pocket to remove); "
                         "pass a synthetic cast, or leave out --mouth lips-only")
    print(f"re-writing {cast_dir} without the mouth pocket -> {dst}", flush=True)
    tmp = temp_dir(dst)
    tmp.rmdir()
    shutil.copytree(cast_dir, tmp)
    lips_only_cast(tmp)
    return commit_dir(tmp, dst)


@torch.no_grad()
def render_speed(avatar, cast, sizes: list[int], frames: int, device: torch.device) -> list[dict]:
    """Frames/s of whole-image renders of identity 0's first held-out frame at each size
    (intrinsics scaled from the cast's); one untimed warm-up render per size."""
    f = int(cast.frames("test", 0)[0])
    fb = frames_from_cast(avatar, cast, np.array([f]), own_latents=False)
    c2h = torch.from_numpy(cast.cam_to_head[f])
    bg = background_color("white", device)
    rows = []
    for size in sizes:
        K = torch.from_numpy(cast.intrinsics[f]).clone() * (size / cast.width)
        out = {}
        times = time_calls(lambda k, K=K, size=size, out=out: out.update(render_image(avatar, fb, c2h, K, size, size, bg)),
                           device, frames)
        sec = float(np.mean(times))
        rows.append({"size": f"{size}²", "backend": avatar.backend, "frames timed": frames, "ms/frame": sec * 1e3,
                     "frames/s": 1 / sec, "rays/s": size * size / sec, "opacity mean": float(out["opacity"].mean())})
        print(f"  render {size}²: {sec * 1e3:.1f} ms/frame ({1 / sec:.2f} frames/s, {avatar.backend} backend)", flush=True)
    return rows


def run_variant(name: str, seed: int, cast, args, want_render: bool) -> tuple[dict, dict, list[dict]]:
    """Train one variant for ``args.steps`` steps and evaluate it; returns (row, detail, render rows)."""
    label = name if seed == 0 else f"{name}@seed{seed}"
    cfg = variant_config(name, seed, args)
    load_before = load_averages()
    trainer = Trainer(cfg, cast, args.work / "runs" / f"ablation-{label}", device=args.device)
    wall = cpu = 0.0
    loss = float("nan")
    for k in range(args.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        loss = trainer.train_step().loss
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        if (k + 1) % max(1, args.steps // 4) == 0 and k + 1 < args.steps:
            print(f"  [{label}] step {k + 1}/{args.steps}  loss {loss:.4f}  {wall:.0f} s", flush=True)
    q = quality(trainer.avatar, cast, cast, cfg.render.eval_background, args.transfer_frames)
    load_after = load_averages()
    desc = describe(name, args)
    row = {"variant": label, "seed": seed, "description": desc,
           "cond_params": sum(p.numel() for p in trainer.avatar.conditioning.parameters()), "steps": trainer.step,
           **{k: q[k] for k in ("heldout_psnr", "heldout_ssim", "heldout_psnr_masked", "transfer_psnr", "transfer_ssim",
                                *MOUTH_KEYS)},
           "train_s": round(wall, 2), "cpu_s": round(cpu, 2), "loss": loss, "threads": torch.get_num_threads(),
           "load_before": load_before[0], "load_after": load_after[0]}
    tq, ts = q["transfer_psnr"], q["transfer_ssim"]
    print(f"{label}: held-out {q['heldout_psnr']:.2f} dB / SSIM {q['heldout_ssim']:.3f}, transfer "
          f"{'—' if tq is None else f'{tq:.2f} dB / SSIM {ts:.3f}'}; {trainer.step} steps in {wall:.0f} s "
          f"(CPU {cpu:.0f} s); load {load_before[0]} → {load_after[0]}", flush=True)
    print(f"{label} mouth: held-out mouth PSNR {num(q['heldout_mouth_psnr'], 2)} dB, lip motion "
          f"{num(q['heldout_lip_motion'], 3)}; transfer mouth PSNR {num(q['transfer_mouth_psnr'], 2)} dB, lip motion "
          f"{num(q['transfer_lip_motion'], 3)}", flush=True)
    detail = {"variant": label, "config": cfg.to_dict(), "per_identity": q["per_identity"],
              "transfer_pairs": q["transfer_pairs"], "load_before": load_before, "load_after": load_after}
    speed = render_speed(trainer.avatar.eval(), cast, args.render_sizes, args.render_frames, args.device) if want_render else []
    del trainer
    gc.collect()
    if args.device.type == "cuda":
        torch.cuda.empty_cache()
    return row, detail, speed


def noise_floor(rows: list[dict]) -> dict | None:
    """Spread (max − min) of the reference variant's metrics over its seeds."""
    ref = [r for r in rows if r["variant"].split("@")[0] == REFERENCE]
    if len(ref) < 2:
        return None
    out = {"runs": len(ref)}
    for k in ("heldout_psnr", "heldout_ssim", "transfer_psnr", "transfer_ssim", *MOUTH_KEYS):
        vals = [r[k] for r in ref if r[k] is not None]
        out[k] = float(max(vals) - min(vals)) if vals else None
    return out


def table(rows: list[dict]) -> str:
    """Markdown table; the best value of each metric column (seed-0 rows) in bold."""
    metrics = {"heldout_psnr": 2, "heldout_ssim": 3, "transfer_psnr": 2, "transfer_ssim": 3, "heldout_psnr_masked": 2}
    main_rows = [r for r in rows if r["seed"] == 0]
    best = {k: max((r[k] for r in main_rows if r[k] is not None), default=None) for k in metrics}
    cols = ["variant", "what", "cond. params", "held-out PSNR", "held-out SSIM", "transfer PSNR", "transfer SSIM",
            "masked held-out PSNR", "train s", "CPU s"]
    names = dict(zip(cols[3:8], metrics))
    out = []
    for r in rows:
        d = {"variant": r["variant"], "what": r["description"], "cond. params": f"{r['cond_params']:,}",
             "train s": f"{r['train_s']:.0f}", "CPU s": f"{r['cpu_s']:.0f}"}
        for col, k in names.items():
            v = r[k]
            txt = "—" if v is None else f"{v:.{metrics[k]}f}"
            d[col] = f"**{txt}**" if (v is not None and r["seed"] == 0 and v == best[k]) else txt
        out.append(d)
    return md_table(out, cols)


def num(v, digits: int) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def mouth_table(rows: list[dict]) -> str:
    """Markdown table of the mouth next to the whole image, held out and in transfer; the
    best of each column (seed-0 rows) in bold."""
    cols = {"held-out PSNR": ("heldout_psnr", 2), "held-out mouth PSNR": ("heldout_mouth_psnr", 2),
            "held-out lip motion": ("heldout_lip_motion", 3), "transfer PSNR": ("transfer_psnr", 2),
            "transfer mouth PSNR": ("transfer_mouth_psnr", 2), "transfer lip motion": ("transfer_lip_motion", 3)}
    main_rows = [r for r in rows if r["seed"] == 0]
    best = {k: max((r[k] for r in main_rows if r.get(k) is not None), default=None) for k, _ in cols.values()}
    out = []
    for r in rows:
        d = {"variant": r["variant"]}
        for col, (k, digits) in cols.items():
            v = r.get(k)
            d[col] = f"**{num(v, digits)}**" if (v is not None and r["seed"] == 0 and v == best[k]) else num(v, digits)
        out.append(d)
    return md_table(out, ["variant", *cols])


def mouth_verdict(rows: list[dict], floor: dict | None) -> str:
    """One sentence: does M beat the baseline on the mouth (differences vs the noise floor)?"""
    by = {r["variant"]: r for r in rows if r["seed"] == 0}
    if REFERENCE not in by or "baseline" not in by:
        return ""
    m, b = by[REFERENCE], by["baseline"]
    parts = []
    for k, what, unit in (("heldout_mouth_psnr", "held-out mouth PSNR", " dB"), ("heldout_lip_motion", "held-out lip motion", ""),
                          ("transfer_mouth_psnr", "transfer mouth PSNR", " dB"), ("transfer_lip_motion", "transfer lip motion", "")):
        if m.get(k) is None or b.get(k) is None:
            continue
        d = m[k] - b[k]
        noise = (floor or {}).get(k)
        call = ("within the noise floor" if noise is not None and abs(d) <= noise + 1e-9
                else "equal" if d == 0 else "M ahead" if d > 0 else "baseline ahead")
        parts.append(f"{what} {d:+.3g}{unit} ({call}{'' if noise is None else f', floor {noise:.3g}'})")
    if not parts:
        return ""
    return f"M − baseline on the mouth: {'; '.join(parts)}." + ("" if floor else " (No noise floor: pass --noise-seeds ≥ 1.)")


def markdown(env, setup, rows, floor, speed, args, threads_note, loads) -> str:
    cast = setup["cast"]
    lines = [
        f"# Conditioning ablation with ground truth ({args.mode}{', lips-only meshes' if args.mouth == 'lips-only' else ''}) "
        f"on {env['device']}", "",
        *([f"**SMOKE TEST ({args.steps} steps per variant): these numbers only show the table's format, they are "
           "not results.**", ""] if args.smoke else []),
        f"`{env['command']}` — torch {env['torch']}, CUDA {env['cuda']}, commit {env['git_commit']}, {env['date']}.", "",
        f"Load average (1/5/15 min) before: {loads[0]}, after: {loads[1]}; {threads_note}. The budget is in steps, so "
        "the load changes the times, not the metrics.", "",
        f"Setup: every variant's own settings over preset `{args.base}` with {setup['overrides']}; "
        f"{args.steps} steps each; cast {cast['path']} ({cast['identities']} identities × {cast['frames']} frames at "
        f"{cast['size']}², seed {cast['seed']}; tracked meshes "
        f"{'without the mouth pocket (lips only, like FLAME)' if args.mouth == 'lips-only' else 'with the mouth pocket'}). Held-out: every identity's test frames (last 10 %, unseen expressions), "
        "its mean latent code. Transfer: every identity driven by every other's held-out expressions and head poses, "
        f"vs the cross-reenactment ground truth ({'all' if args.transfer_frames is None else args.transfer_frames} "
        "frames per pair). PSNR over the whole image on white; masked PSNR only where the head is. Best of each "
        "column in bold.", "",
        table(rows), "",
        "## The mouth", "",
        "`mouth PSNR`: PSNR inside the box of the ground truth's lips + mouth interior (seg_mask ids 120/130/140, "
        "dilated 3 px); `lip motion`: correlation over frames of the rendered vs true mouth opening (pixels of the "
        "truth's mouth regions unlike every face colour of its box, fastminerf/eval/mouth.py), per identity (held-out) or per pair (transfer), then averaged; a frozen mouth scores 0. "
        "Whole-image PSNR repeated for reference.", "",
        mouth_table(rows), "",
    ]
    verdict = mouth_verdict(rows, floor)
    if verdict:
        lines += [verdict, ""]
    if floor:
        lines += [f"Noise floor: {REFERENCE} trained with {floor['runs']} seeds differs by "
                  f"{floor['heldout_psnr']:.2f} dB held-out PSNR and {floor['transfer_psnr'] or 0:.2f} dB transfer PSNR, "
                  f"{num(floor.get('heldout_mouth_psnr'), 2)} / {num(floor.get('transfer_mouth_psnr'), 2)} dB mouth PSNR "
                  f"and {num(floor.get('heldout_lip_motion'), 3)} / {num(floor.get('transfer_lip_motion'), 3)} lip motion "
                  "(held-out / transfer; max − min): smaller differences between variants are not evidence.", ""]
    lines += ["MI-NeRF (Table 1, 10 real identities, expression transfer; identity distance instead of ground truth): "
              "M 29.73 dB, H 28.95 dB, baseline 28.65 dB — the baseline mixes identities under another person's "
              "expressions, which the ground-truth transfer PSNR here measures directly.", ""]
    if speed:
        lines += [f"## Render speed ({REFERENCE if REFERENCE in args.variants else args.variants[0]}, trained model)", "",
                  "Whole-image renders of one held-out frame, intrinsics scaled to the size; warm-up render untimed.", "",
                  md_table(speed, list(speed[0])), ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = build_parser()
    args = resolve_args(ap, argv)
    try:
        for v in args.variants:  # bad presets or overrides fail before any training
            variant_config(v, 0, args)
        loads = [load_averages()]
        threads, threads_note = set_threads(args.threads, args.device)
        print(threads_note, flush=True)
        cast_dir = ensure_cast(args.cast, args.work, 2 if args.cast else args.identities, args.frames, args.size, args.seed)
        if args.mouth == "lips-only":
            cast_dir = lips_only_copy(cast_dir, args.work)
        cast = load_subset(identity_dirs(cast_dir) if args.cast is not None else identity_dirs(cast_dir)[: args.identities])
        if cast.n_identities < 2:
            raise BenchError(f"{cast_dir}: transfer needs at least 2 identities, found {cast.n_identities}")
        runs = [(v, 0) for v in args.variants]
        if REFERENCE in args.variants:
            runs += [(REFERENCE, s) for s in range(1, args.noise_seeds + 1)]
        render_of = REFERENCE if REFERENCE in args.variants else args.variants[0]
        print(f"{len(runs)} runs of {args.steps} steps on {cast.n_identities} identities: "
              + ", ".join(v if s == 0 else f"{v}@seed{s}" for v, s in runs), flush=True)
        print(f"warm-up (untimed): {warm_up(variant_config(runs[0][0], 0, args), cast, args.work, args.device):.1f} s", flush=True)
        rows, details, speed = [], [], []
        for v, s in runs:
            row, detail, sp = run_variant(v, s, cast, args, want_render=(args.render_frames > 0 and v == render_of and s == 0))
            rows.append(row)
            details.append(detail)
            speed += sp
        loads.append(load_averages())
    except BenchError as e:
        return fail(str(e))
    env = environment(args.device)
    floor = noise_floor(rows)
    setup = {"mode": args.mode, "base": args.base, "overrides": args.mode_overrides + args.overrides, "steps": args.steps,
             "cast": cast_facts(cast_dir, cast),
             "variants": args.variants, "noise_seeds": args.noise_seeds, "transfer_frames": args.transfer_frames,
             "threads": threads, "threads_note": threads_note, "load_average_before": loads[0],
             "load_average_after": loads[1]}
    payload = {"environment": env, "setup": setup, "rows": rows, "noise_floor": floor, "render_speed": speed,
               "details": details}
    files = {".json": dumps(payload), ".csv": csv_text(rows, CSV_COLUMNS),
             ".md": markdown(env, setup, rows, floor, speed, args, threads_note, loads)}
    for p in write_all(args.out, args.stem, files):
        print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
