"""Training-time scaling: ONE joint model for N identities vs N single-identity models.

    python benchmarks/train_time.py --cpu-tiny     # N = 1, 2, 4 at 64², minutes on a CPU
    python benchmarks/train_time.py                # GPU: N = 1, 2, 5, 10, 20, 50, 100 at 256²
    python benchmarks/train_time.py --identities 1,2,5 --target 26 --max-minutes 30 --cast DIR

MI-NeRF's claim (method.md §1): one model for 100 identities costs ≈ 2× a single-identity
model, not 100× — a sub-linear cost curve. For every N this trains one joint model on the
first N identities of one synthetic cast (synthesized once; identity k is the same person
in every prefix) and measures the training wall time (and process CPU time, and steps;
evaluations are off the clock) until the mean held-out PSNR reaches ``--target``
(:func:`fastminerf.train.target.train_to_target`). For the separate models it trains
single-identity models of the first ``--singles`` identities to the same target; the total
for N is their measured sum when N ≤ --singles, else N × their mean (extrapolated, and
labelled so). Runs are interleaved (single 0, joint N₁, single 1, joint N₂, ...) in one
process so that both curves see the same machine load; each is capped by ``--max-minutes``
and a run that misses the target is recorded as not reached.

The same joint runs give the quality on novel expressions vs N (MI-NeRF Fig. 4 right): at a
fixed budget of ``--quality-steps`` steps, held-out self-reenactment PSNR/SSIM and
cross-identity transfer PSNR/SSIM against ground truth (each trained identity driven by the
held-out expressions of other people of the cast, whether trained or not).

Writes train_time-<mode>.csv/.json/.md/.png into --out (default benchmarks/results/), each
via a temp file + rename, with the device, versions, load averages and exact command.
"""
from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # this checkout's package, not an installed one

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fastminerf.config import load_config  # noqa: E402
from fastminerf.errors import InputError  # noqa: E402
from fastminerf.train.target import METRICS, eval_steps, train_to_target  # noqa: E402
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
    figure_png,
    fit_power_law,
    identity_dirs,
    load_averages,
    load_subset,
    md_table,
    pick_device,
    quality,
    require_matplotlib,
    set_threads,
    threads_arg,
    warm_up,
    write_all,
)

MODES = {
    # 64² cast, 1024 rays per step: a 1-identity model passes 18 dB in ~1–2 min on a loaded 2-core CPU
    "cpu-tiny": dict(identities=[1, 2, 4], frames=60, size=64, config="tiny_cpu",
                     overrides=["data.rays_per_batch=1024", "data.frames_per_batch=16"], target=18.0,
                     max_minutes=5.0, max_steps=2000, quality_steps=300, singles=3, eval_frames=3,
                     transfer_frames=3, first_eval=20, eval_gap=10),
    "gpu": dict(identities=[1, 2, 5, 10, 20, 50, 100], frames=100, size=256, config="insta_512_gpu", overrides=[],
                target=28.0, max_minutes=60.0, max_steps=20000, quality_steps=5000, singles=3, eval_frames=2,
                transfer_frames=2, first_eval=250, eval_gap=250),
}
CSV_COLUMNS = ["run", "kind", "n_identities", "identities", "reached", "stop", "steps_to_target", "train_s_to_target",
               "cpu_s_to_target", "lower_s", "total_steps", "total_train_s", "eval_s", "setup_s", "best", "threads",
               "load_before", "load_after", "quality_step", "heldout_psnr", "heldout_ssim", "heldout_psnr_masked",
               "transfer_psnr", "transfer_ssim", "transfer_first"]


def identity_counts(text: str) -> list[int]:
    """argparse type: "1,2,5" → [1, 2, 5] (positive, increasing after sorting, no repeats)."""
    try:
        ns = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ns or ns[0] < 1:
        raise argparse.ArgumentTypeError(f"identity counts must be positive integers, got {text!r}")
    return ns


def positive(kind):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return v
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="Defaults in brackets are the GPU / --cpu-tiny values.")
    ap.add_argument("--cpu-tiny", action="store_true", help="the CPU mode: N = 1, 2, 4 at 64², minutes per run")
    ap.add_argument("--identities", type=identity_counts, help="identity counts N, comma-separated [1,2,5,10,20,50,100 / 1,2,4]")
    ap.add_argument("--frames", type=positive(int), help="frames per identity of the synthesized cast [100 / 60]")
    ap.add_argument("--size", type=positive(int), help="image size of the synthesized cast [256 / 64]")
    ap.add_argument("--seed", type=int, default=0, help="synthesis seed (also names the cached cast)")
    ap.add_argument("--cast", type=Path, help="reuse this synthetic cast folder (needs ≥ max N identity folders)")
    ap.add_argument("--config", help="training preset [insta_512_gpu / tiny_cpu]")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override (repeatable), after the mode's own")
    ap.add_argument("--target", type=positive(float), help="held-out target, dB for PSNR [28 / 18]")
    ap.add_argument("--metric", choices=METRICS, default="psnr", help="held-out metric of the target (default psnr)")
    ap.add_argument("--max-minutes", type=positive(float), help="training-time budget per run [60 / 5]")
    ap.add_argument("--max-steps", type=positive(int), help="step cap per run, also the lr-decay horizon [20000 / 2000]")
    ap.add_argument("--quality-steps", type=positive(int), help="fixed step budget of the quality-vs-N figures [5000 / 300]")
    ap.add_argument("--singles", type=int, help="single-identity models measured (the rest extrapolated) [3]")
    ap.add_argument("--eval-frames", type=positive(int), help="held-out frames per identity in target evals [2 / 3]")
    ap.add_argument("--transfer-frames", type=positive(int), help="frames per transfer pair in quality evals [2 / 3]")
    ap.add_argument("--first-eval", type=positive(int), help="first target eval step; then every ~15%% more steps [250 / 20]")
    ap.add_argument("--threads", type=threads_arg, default="auto",
                    help="torch CPU threads: 'auto' (1 when the load average exceeds the cores) or N")
    ap.add_argument("--device", choices=["auto", "cpu", "cuda"], help="default auto: cuda when present")
    ap.add_argument("--work", type=Path, default=ROOT / "outputs" / "bench", help="where synthesized casts are kept")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder of the result files")
    ap.add_argument("--stem", help="result file stem [train_time-gpu / train_time-cpu-tiny]")
    ap.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib needed)")
    return ap


def resolve_args(ap: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse, fill the mode's defaults and cross-check (argparse errors, exit 2)."""
    args = ap.parse_args(argv)
    args.mode = "cpu-tiny" if args.cpu_tiny else "gpu"
    for k, v in MODES[args.mode].items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.singles < 0:
        ap.error(f"--singles must be ≥ 0, got {args.singles}")
    if args.metric == "ssim" and args.target >= 1:
        ap.error(f"--target {args.target} is out of reach for --metric ssim (≤ 1)")
    if args.max_steps < args.quality_steps:
        ap.error(f"--quality-steps {args.quality_steps} exceeds --max-steps {args.max_steps}")
    if args.size < 32:
        ap.error(f"--size must be at least 32, got {args.size}")
    if args.frames < 10:
        ap.error(f"--frames must be at least 10 (10 % of them are held out), got {args.frames}")
    asked = args.device
    args.device = pick_device(asked or "auto")
    if args.device.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    if args.mode == "gpu" and args.device.type == "cpu" and asked is None:
        ap.error("no CUDA device: the full curves need a GPU; pass --cpu-tiny (or --device cpu to insist)")
    args.stem = args.stem or f"train_time-{args.mode}"
    args.n_cast = max(max(args.identities), args.singles)
    return args


def plan(ns: list[int], singles: int) -> list[tuple[str, int, list[int]]]:
    """(kind, N, identity indices) runs, interleaved: single 0, joint N₁, single 1, joint N₂, ..."""
    out = []
    for k in range(max(len(ns), singles)):
        if k < singles:
            out.append(("single", 1, [k]))
        if k < len(ns):
            out.append(("joint", ns[k], list(range(ns[k]))))
    return out


def train_config(args):
    fixed = ["train.eval_every=0", "train.save_every=0", "train.max_minutes=null", f"train.steps={args.max_steps}"]
    try:
        return load_config(args.config, args.overrides_mode + fixed + args.overrides)
    except InputError as e:
        raise BenchError(str(e)) from None


def run_one(kind: str, n: int, idx: list[int], dirs: list[Path], driver_cast, cfg, args) -> tuple[dict, dict]:
    """Train one model to the target; returns (CSV row, full result)."""
    label = f"joint N={n}" if kind == "joint" else f"single {dirs[idx[0]].name}"
    load_before = load_averages()
    cast = load_subset([dirs[i] for i in idx])
    t0 = time.perf_counter()
    trainer = Trainer(cfg, cast, args.work / "runs" / label.replace(" ", "_").replace("=", ""), device=args.device)
    setup = time.perf_counter() - t0

    def on_eval(p):
        print(f"  [{label}] step {p.step:>6}  train {p.train_seconds:8.1f} s  {args.metric} {p.value:6.2f}"
              f"  (target {args.target})", flush=True)

    res = train_to_target(
        trainer, args.target, metric=args.metric, frames_per_identity=args.eval_frames,
        max_seconds=60 * args.max_minutes, max_steps=args.max_steps,
        schedule=eval_steps(args.first_eval, 1.15, args.eval_gap), snapshot_step=args.quality_steps,
        snapshot=lambda tr: quality(tr.avatar, cast, driver_cast, cfg.render.eval_background, args.transfer_frames),
        on_eval=on_eval)
    load_after = load_averages()
    q = res.snapshot or {}
    row = {"run": label, "kind": kind, "n_identities": n, "identities": " ".join(cast.names), "reached": res.reached,
           "stop": res.stop, "steps_to_target": res.steps, "train_s_to_target": res.train_seconds,
           "cpu_s_to_target": res.cpu_seconds, "lower_s": res.lower_seconds, "total_steps": res.total_steps,
           "total_train_s": res.total_train_seconds, "eval_s": round(res.eval_seconds, 2), "setup_s": round(setup, 2),
           "best": res.best, "threads": torch.get_num_threads(), "load_before": load_before[0],
           "load_after": load_after[0], "quality_step": res.snapshot_step,
           **{k: q.get(k) for k in ("heldout_psnr", "heldout_ssim", "heldout_psnr_masked", "transfer_psnr",
                                    "transfer_ssim", "transfer_first")}}
    got = (f"reached {args.target} at step {res.steps} after {res.train_seconds:.1f} s training "
           f"(CPU {res.cpu_seconds:.1f} s)" if res.reached else
           f"NOT reached (best {res.best:.2f}; stopped: {res.stop} at step {res.total_steps}, {res.total_train_seconds:.1f} s)")
    tq = q.get("transfer_psnr")
    print(f"{label}: {got}; at step {res.snapshot_step}: held-out {q.get('heldout_psnr', float('nan')):.2f} dB, "
          f"transfer {'—' if tq is None else f'{tq:.2f} dB'}; load {load_before[0]} → {load_after[0]}", flush=True)
    full = {"run": label, "kind": kind, "n_identities": n, "identities": cast.names, "setup_s": setup,
            "load_before": load_before, "load_after": load_after, "result": res.to_dict()}
    del trainer
    gc.collect()
    if args.device.type == "cuda":
        torch.cuda.empty_cache()
    return row, full


def summarize(rows: list[dict], args) -> tuple[list[dict], dict]:
    """Per N: joint time, separate total (measured sum / extrapolated), ratio; power-law fits."""
    singles = [r for r in rows if r["kind"] == "single"]
    k = len(singles)
    all_reached = k > 0 and all(r["reached"] for r in singles)
    out = []
    for n in args.identities:
        j = next(r for r in rows if r["kind"] == "joint" and r["n_identities"] == n)
        s = {"n": n, "joint_reached": j["reached"], "joint_steps": j["steps_to_target"], "joint_s": j["train_s_to_target"],
             "joint_cpu_s": j["cpu_s_to_target"], "joint_budget_s": j["total_train_s"]}
        if all_reached:
            use = singles[:n] if n <= k else singles
            scale = 1 if n <= k else n / k
            s.update(separate_s=scale * sum(r["train_s_to_target"] for r in use),
                     separate_cpu_s=scale * sum(r["cpu_s_to_target"] for r in use),
                     separate_steps=scale * sum(r["steps_to_target"] for r in use),
                     separate_how="measured" if n <= k else f"extrapolated: {n} x mean of {k}")
        else:
            s.update(separate_s=None, separate_cpu_s=None, separate_steps=None,
                     separate_how=f"not reached ({sum(r['reached'] for r in singles)}/{k} singles)" if k else "no single runs")
        s["separate_over_joint"] = (s["separate_s"] / s["joint_s"]) if s["separate_s"] and s["joint_s"] else None
        out.append(s)
    ns = [s["n"] for s in out]
    fits = {
        "joint_wall": fit_power_law(ns, [s["joint_s"] for s in out]),
        "joint_cpu": fit_power_law(ns, [s["joint_cpu_s"] for s in out]),
        "joint_steps": fit_power_law(ns, [s["joint_steps"] for s in out]),
        "separate_wall": fit_power_law(ns, [s["separate_s"] for s in out]),
    }
    return out, fits


def plot(summary: list[dict], rows: list[dict], fits: dict, args, plt):
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ns = np.array([s["n"] for s in summary], float)
    xs = np.geomspace(ns.min(), ns.max(), 50) if len(ns) > 1 else ns

    def curve(key, color, marker, name, fit):
        pts = [(s["n"], s[key]) for s in summary if s[key] is not None]
        if not pts:
            return
        lab = name + (f", fit t ∝ N^{fit['a']:.2f}" if fit else "")
        ax1.plot(*zip(*pts), marker + "-", color=color, label=lab)
        if fit:
            ax1.plot(xs, fit["c"] * xs ** fit["a"], "--", color=color, alpha=0.5, lw=1)

    curve("joint_s", "C0", "o", "one joint model", fits["joint_wall"])
    n_single = sum(r["kind"] == "single" for r in rows)
    curve("separate_s", "C1", "s", f"N single-identity models ({n_single} measured)", fits["separate_wall"])
    extra = [(s["n"], s["separate_s"]) for s in summary if s["separate_s"] is not None and "extrapolated" in s["separate_how"]]
    if extra:
        ax1.plot(*zip(*extra), "s", mfc="white", color="C1", label="  (extrapolated)")
    miss = [(s["n"], s["joint_budget_s"]) for s in summary if not s["joint_reached"]]
    if miss:
        ax1.plot(*zip(*miss), "^", mfc="white", color="C0", label="joint: not reached (≥ budget)")
    ax1.set_xscale("log"), ax1.set_yscale("log")
    n_ticks(ax1, ns)
    ax1.set_xlabel("identities N"), ax1.set_ylabel("total training time to target (s)")
    ax1.set_title(f"time to mean held-out {args.metric} ≥ {args.target:g}", fontsize=10)
    ax1.legend(fontsize=7), ax1.grid(True, which="both", alpha=0.3)

    joints = [r for r in rows if r["kind"] == "joint"]
    for key, m, name in (("heldout_psnr", "o", "held-out (own expressions)"),
                         ("transfer_psnr", "s", "transfer: novel expressions of others"),
                         ("transfer_first", "d", f"transfer, {joints[0]['identities'].split()[0]} only")):
        pts = [(r["n_identities"], r[key]) for r in joints if r[key] is not None]
        if pts:
            ax2.plot(*zip(*pts), m + "-", label=name)
    ax2.set_xscale("log")
    n_ticks(ax2, ns)
    ax2.set_xlabel("identities N"), ax2.set_ylabel("PSNR (dB)")
    ax2.set_title(f"joint model quality at {args.quality_steps} steps", fontsize=10)
    ax2.legend(fontsize=7), ax2.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def n_ticks(ax, ns) -> None:
    """Label a log x axis with the identity counts themselves."""
    from matplotlib.ticker import NullLocator, ScalarFormatter

    ax.set_xticks(list(ns))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())


def markdown(env, setup, summary, rows, fits, args, threads_note, loads) -> str:
    def fit_txt(f):
        return "—" if f is None else f"N^{f['a']:.2f} ({f['points']} points)"

    sum_rows = [{"N": s["n"], "joint reached": s["joint_reached"], "joint steps": s["joint_steps"],
                 "joint train s": s["joint_s"], "joint CPU s": s["joint_cpu_s"], "separate total s": s["separate_s"],
                 "separate": s["separate_how"], "separate / joint": s["separate_over_joint"]} for s in summary]
    run_rows = [{**r, "load": f"{r['load_before']} → {r['load_after']}"} for r in rows]
    q_rows = [r for r in rows if r["kind"] == "joint"] + [r for r in rows if r["kind"] == "single"]
    cast = setup["cast"]
    lines = [
        f"# Training time vs number of identities ({args.mode}) on {env['device']}", "",
        f"`{env['command']}` — torch {env['torch']}, CUDA {env['cuda']}, commit {env['git_commit']}, {env['date']}.", "",
        f"Load average (1/5/15 min) before: {loads[0]}, after: {loads[1]}; {threads_note}. "
        "Other jobs share this machine, so wall times are noisy: CPU times (process time of the training steps) "
        "and steps are given beside them.", "",
        f"Setup: preset `{args.config}` with {setup['overrides']}; cast {cast['path']} "
        f"({cast['identities']} identities × {cast['frames']} frames at {cast['size']}², seed {cast['seed']}), the first N "
        f"identities per joint model. Target: mean held-out {args.metric} ≥ {args.target:g} over "
        f"{'all' if args.eval_frames is None else args.eval_frames} held-out frames per identity, evaluated at steps "
        f"{args.first_eval}, then every ~15 % more, at least {args.eval_gap} apart (the time is exact to about that; "
        "evaluations are off the clock). "
        f"Budget per run: {args.max_minutes:g} min of training or {args.max_steps} steps. Separate models: "
        f"{min(args.singles, args.n_cast)} single-identity models measured (the first identities); for larger N the "
        "total is extrapolated as N × their mean time.", "",
        "## Time to target", "",
        md_table(sum_rows, list(sum_rows[0])), "",
        f"Power-law fits: joint wall time {fit_txt(fits['joint_wall'])}, joint CPU time {fit_txt(fits['joint_cpu'])}, "
        f"joint steps {fit_txt(fits['joint_steps'])}; separate models {fit_txt(fits['separate_wall'])} "
        "(linear by construction beyond the measured ones). MI-NeRF (vanilla NeRF, one GPU): 1–2 identities ≈ 40 h, "
        "100 identities ≈ 80 h, i.e. about N^0.16 for the joint model vs N^1 for separate models.", "",
        "## Runs (in the order they ran)", "",
        md_table(run_rows, ["run", "reached", "stop", "steps_to_target", "train_s_to_target", "cpu_s_to_target",
                            "lower_s", "total_steps", "total_train_s", "eval_s", "best", "threads", "load"]), "",
        "`lower_s`: training time at the previous evaluation (the target was crossed in between).", "",
        f"## Quality vs N at a fixed budget of {args.quality_steps} steps (MI-NeRF Fig. 4 right)", "",
        "Held-out: each trained identity's own test frames (its last 10 %: expressions the model never saw). Transfer: "
        "each trained identity driven by other cast members' held-out expressions and head poses, against the "
        f"cross-reenactment ground truth (drivers need not be trained; {args.transfer_frames} frames per pair). "
        "Rows `single` are single-identity models at the same budget.", "",
        md_table(q_rows, ["run", "quality_step", "heldout_psnr", "heldout_ssim", "heldout_psnr_masked", "transfer_psnr",
                          "transfer_ssim", "transfer_first"]), "",
        "`transfer_first`: transfer PSNR of the first identity alone (the same person in every row).", "",
    ]
    if not args.no_plot:
        lines += [f"![time to target and quality vs N]({args.stem}.png)", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = build_parser()
    args = resolve_args(ap, argv)
    args.overrides_mode = MODES[args.mode]["overrides"] if args.config == MODES[args.mode]["config"] else []
    args.eval_gap = MODES[args.mode]["eval_gap"]
    try:
        plt = None if args.no_plot else require_matplotlib()
        cfg = train_config(args)
        loads = [load_averages()]
        threads, threads_note = set_threads(args.threads, args.device)
        print(threads_note, flush=True)
        cast_dir = ensure_cast(args.cast, args.work, args.n_cast, args.frames, args.size, args.seed)
        dirs = identity_dirs(cast_dir)[: args.n_cast]
        driver_cast = load_subset(identity_dirs(cast_dir))
        print(f"warm-up (untimed): {warm_up(cfg, load_subset(dirs[:1]), args.work, args.device):.1f} s", flush=True)
        rows, full = [], []
        runs = plan(args.identities, min(args.singles, args.n_cast))
        print(f"{len(runs)} runs: " + ", ".join(f"{k} N={n}" if k == "joint" else f"single {dirs[i[0]].name}"
                                             for k, n, i in runs), flush=True)
        for kind, n, idx in runs:
            row, res = run_one(kind, n, idx, dirs, driver_cast, cfg, args)
            rows.append(row)
            full.append(res)
        loads.append(load_averages())
    except BenchError as e:
        return fail(str(e))
    summary, fits = summarize(rows, args)
    env = environment(args.device)
    setup = {"mode": args.mode, "config": args.config, "overrides": args.overrides_mode + args.overrides,
             "cast": cast_facts(cast_dir, driver_cast),
             "identity_counts": args.identities, "singles": min(args.singles, args.n_cast), "target": args.target,
             "metric": args.metric, "eval_frames": args.eval_frames, "first_eval": args.first_eval,
             "max_minutes": args.max_minutes, "max_steps": args.max_steps, "quality_steps": args.quality_steps,
             "transfer_frames": args.transfer_frames, "threads": threads, "threads_note": threads_note,
             "load_average_before": loads[0], "load_average_after": loads[1]}
    payload = {"environment": env, "setup": setup, "summary": summary, "fits": fits, "rows": rows, "runs": full}
    files = {".json": dumps(payload), ".csv": csv_text(rows, CSV_COLUMNS),
             ".md": markdown(env, setup, summary, rows, fits, args, threads_note, loads)}
    if plt is not None:
        fig = plot(summary, rows, fits, args, plt)
        files[".png"] = figure_png(fig)
        plt.close(fig)
    for p in write_all(args.out, args.stem, files):
        print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
