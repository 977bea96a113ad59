"""``fastminerf demo``: synthesize 3 identities, train, render, evaluate — offline, minutes on a CPU."""
from __future__ import annotations

import json

from ..demo import run_demo
from ..errors import InputError


def register(sub) -> None:
    p = sub.add_parser("demo", help="synthesize a small cast, train one model, write videos and metrics")
    p.add_argument("--out", default="outputs/demo", help="output folder (default: outputs/demo)")
    p.add_argument("--minutes", type=float, default=3.0, help="training budget in minutes (default: 3)")
    p.add_argument("--identities", type=int, default=3, help="identities to synthesize (default: 3)")
    p.add_argument("--frames", type=int, default=40, help="frames per identity (default: 40)")
    p.add_argument("--size", type=int, default=128, help="image size (default: 128)")
    p.add_argument("--config", default="tiny_cpu", help="config preset (default: tiny_cpu)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.identities < 2:
        raise InputError(None, "the demo needs at least 2 identities (one drives the other)")
    m = run_demo(args.out, minutes=args.minutes, identities=args.identities, frames=args.frames, size=args.size, config=args.config,
                 overrides=args.overrides, progress=not args.quiet)
    short = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in m.items() if k in ("psnr", "psnr_masked", "ssim", "mouth_psnr", "lip_motion", "transfer_psnr", "transfer_mouth_psnr",
                                                                                     "transfer_lip_motion")}
    print(f"\nheld-out: {json.dumps(short)}")
    print(f"wrote {args.out}/render.mp4, {args.out}/transfer.mp4, {args.out}/contact_sheet.png, {args.out}/metrics.json")
    return 0
