"""``fastminerf synth``: write the procedural synthetic cast (see fastminerf.data.synth.cast)."""
from __future__ import annotations

import argparse
import time

from ..data.synth.cast import synthesize_cast
from ..data.synth.lips_only import lips_only_cast
from .checks import at_least, at_most

#: largest --size synth renders (a 4096² cast is already ~64 MB per frame in the cache)
MAX_SIZE = 4096


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative (got {text})")
        return value
    return parse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="write a synthetic cast with ground truth (procedural heads, talking motion)",
        description="Render N procedural identities talking (train 90 % / test 10 %), cross-reenactment ground "
                    "truth under DIR/<A>/transfer/<B>/, DIR/cast.json and DIR/contact_sheet.png. "
                    "Same arguments give the same bytes.")
    p.add_argument("--identities", type=int, default=10, metavar="N", help="number of identities (default 10)")
    p.add_argument("--frames", type=int, default=100, metavar="F", help="frames per identity (default 100)")
    p.add_argument("--size", type=int, default=256, metavar="S", help="square image size in pixels (default 256)")
    p.add_argument("--seed", type=int, default=0, metavar="K", help="random seed (default 0)")
    p.add_argument("--out", required=True, metavar="DIR", help="cast folder to create")
    p.add_argument("--transfer-drivers", type=int, default=None, metavar="K",
                   help="drivers per identity for transfer ground truth (default: all others when N <= 4, else 3)")
    p.add_argument("--lighting-drift", type=_positive(float), default=0.0, metavar="X",
                   help="per-frame light drift in [0, 1] (default 0: fixed light)")
    p.add_argument("--mouth", choices=["pocket", "lips-only"], default="pocket",
                   help="tracked meshes with the mouth pocket (default) or lips only, like FLAME (written in INSTA's layout)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing cast at DIR")
    p.add_argument("--no-obj", action="store_true", help="do not write meshes/*.obj (the cache still holds the meshes)")
    p.add_argument("--workers", type=int, default=None, metavar="W", help="processes (default: all CPUs)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    at_most("--size", at_least("--size", args.size, 8, optional=False), MAX_SIZE)
    t0 = time.perf_counter()
    paths = synthesize_cast(
        args.out, args.identities, args.frames, args.size, args.seed, transfer_drivers=args.transfer_drivers,
        lighting_drift=args.lighting_drift, overwrite=args.overwrite, write_obj=not args.no_obj,
        workers=args.workers, progress=not args.quiet)
    if args.mouth == "lips-only":
        lips_only_cast(args.out)
    print(f"wrote {len(paths)} identities to {args.out} in {time.perf_counter() - t0:.1f} s "
          f"(cast.json, contact_sheet.png, {paths[0].name}..{paths[-1].name})")
    return 0
