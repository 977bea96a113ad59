"""``fastminerf train``: one model for many identities."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("train", help="train one model on many identities",
                       description="Train one multi-identity avatar. Runs go to OUT/<data>/<config>/<timestamp>/.")
    p.add_argument("--identities", nargs="+", required=True, metavar="DIR",
                   help="identity folders (ours or INSTA's) and/or folders holding them")
    p.add_argument("--config", default="tiny_cpu", help="preset name in configs/ or a YAML path (default: tiny_cpu)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set model.rank=32 (repeatable)")
    p.add_argument("--out", default="outputs", help="root folder of runs (default: outputs)")
    p.add_argument("--resume", metavar="CKPT", help="continue a run exactly from a checkpoint file or run folder")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..config import load_config
    from ..train.trainer import train

    cfg = load_config(args.config, args.overrides)
    run_dir, metrics = train(cfg, args.identities, args.out, resume=args.resume, progress=not args.quiet)
    short = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in metrics.items() if k not in ("per_identity", "transfer_pairs")}
    print(f"run: {run_dir}\nfinal held-out metrics: {json.dumps(short)}")
    return 0
