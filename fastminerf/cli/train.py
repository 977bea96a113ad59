"""``fastminerf train``: one model for many identities."""
from __future__ import annotations

import json
import os
import sys

from ..config import load_config
from ..lipsync.train import train_lipsync
from ..train.distributed import launch, launched, train_distributed
from ..train.trainer import train
from ..viewer.live import serve_forever, train_with_preview
from .lipsync_train import add_lipsync_args, config_from_args
from .preview import add_server_args, check_server_args


def register(sub) -> None:
    p = sub.add_parser("train", help="train one model on many identities",
                       description="Train one multi-identity avatar. Runs go to OUT/<data>/<config>/<timestamp>/.")
    p.add_argument("--identities", nargs="+", required=True, metavar="DIR",
                   help="identity folders (ours or INSTA's) and/or folders holding them")
    p.add_argument("--config", help="preset name in configs/ or a YAML path (default: tiny_cpu; with --resume: the "
                                    "run's own, and only train.steps/max_minutes/save_every may differ)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set model.rank=32 (repeatable)")
    p.add_argument("--out", default="outputs", help="root folder of runs (default: outputs)")
    p.add_argument("--resume", metavar="CKPT", help="continue a run exactly from a checkpoint file or run folder")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--nproc", type=int, default=1, metavar="N",
                   help="data-parallel ranks on this machine (torchrun --standalone; identities split across "
                        "ranks; default 1 = one process). Several machines: torchrun ... -m fastminerf train")
    p.add_argument("--preview", action="store_true",
                   help="serve the web preview of the model while it trains (see fastminerf preview)")
    p.add_argument("--lipsync", action="store_true",
                   help="then train the audio → expression model on the same identities (their audio.wav) into "
                        "RUN/lipsync.pt, for fastminerf lipsync")
    add_lipsync_args(p, prefix="lipsync-")
    add_server_args(p, prefix="preview-")
    p.add_argument("--preview-share", type=float, default=0.25,
                   help="share of the time spent rendering the preview, 0-0.9 (default: 0.25; a slider on the page)")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.preview:
        check_server_args(args, "preview-")
    cfg = load_config(args.config or "tiny_cpu", args.overrides)
    if args.nproc > 1 and not launched():
        return launch(args.nproc, _without_nproc(sys.argv[1:]))
    if launched():
        run_dir, metrics = train_distributed(cfg, args.identities, args.out, resume=args.resume, progress=not args.quiet)
        if int(os.environ.get("RANK", 0)) == 0:
            _report(run_dir, metrics)
        return 0
    if args.preview:
        return _run_with_preview(args, cfg)
    run_dir, metrics = train(cfg, args.identities, args.out, resume=args.resume, progress=not args.quiet,
                             resume_changes=(args.config, args.overrides))
    _report(run_dir, metrics)
    if args.lipsync:
        _train_lipsync(args, run_dir)
    return 0


def _train_lipsync(args, run_dir) -> None:
    path, m = train_lipsync(args.identities, run_dir / "lipsync.pt", config_from_args(args, "lipsync-"),
                            progress=not args.quiet)
    print(f"lip-sync model: {path} (held-out jaw-open correlation {m.get('jaw_corr', float('nan')):.3f})")


def _run_with_preview(args, cfg) -> int:
    def ready(server):
        print(f"preview at {server.url} (render share {args.preview_share:g}; a slider on the page)", flush=True)

    run_dir, metrics, server = train_with_preview(
        cfg, args.identities, args.out, resume=args.resume, progress=not args.quiet, host=args.preview_host,
        port=args.preview_port, size=args.preview_size, render_share=args.preview_share, on_ready=ready,
        resume_changes=(args.config, args.overrides))
    _report(run_dir, metrics)
    if args.lipsync:
        _train_lipsync(args, run_dir)
    print(f"training done; the preview stays at {server.url} (Ctrl-C to stop)", flush=True)
    serve_forever(server)
    return 0


def _report(run_dir, metrics) -> None:
    short = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items() if k not in ("per_identity", "transfer_pairs")}
    print(f"run: {run_dir}\nfinal held-out metrics: {json.dumps(short)}")


def _without_nproc(argv: list[str]) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out
