"""``fastminerf eval``: held-out PSNR/SSIM per identity, transfer PSNR vs ground truth."""
from __future__ import annotations

import json

from ..eval.evaluate import evaluate_cast
from ..files import write_text
from ..model.loading import cast_of, load_avatar
from .checks import at_least, output_file


def register(sub) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on held-out frames (and transfer ground truth)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--frames", type=int, help="at most this many held-out frames per identity (default: all)")
    p.add_argument("--background", choices=["white", "black"], help="eval background (default: the config's)")
    p.add_argument("--json", dest="json_out", help="write the metrics to this JSON file")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    at_least("--frames", args.frames, 1)
    if args.json_out:
        output_file(args.json_out)
    avatar, cfg = load_avatar(args.checkpoint)
    cast = cast_of(avatar, args.identities)
    m = evaluate_cast(avatar, cast, "test", args.frames, args.background or cfg.render.eval_background,
                      progress=not args.quiet)
    m["lpips"] = None  # LPIPS needs a downloaded backbone; not available offline
    text = json.dumps(m, indent=1)
    if args.json_out:
        print(f"wrote {write_text(args.json_out, text)}")
    print(text)
    return 0
