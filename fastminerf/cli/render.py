"""``fastminerf render`` (and its alias ``transfer``): render an identity over a sequence."""
from __future__ import annotations

from ..data.expressions import read_expression_sequence
from ..errors import InputError
from ..model.loading import cast_of, load_avatar
from ..render.sequence import render_sequence
from ..render.video import write_video
from .checks import VIDEO_SUFFIXES, at_least, at_most, output_file


def _add(p, transfer: bool) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--identity", required=True, help="identity to render (a name of the model's cast)")
    drive = p.add_mutually_exclusive_group(required=transfer)
    drive.add_argument("--expressions-from", dest="expressions_from", metavar="NAME",
                       help="drive the identity with this identity's expressions and head poses (expression transfer)")
    drive.add_argument("--expressions", metavar="FILE",
                       help="drive the identity with expression coefficients from a file ([frames, E] .npy or text, one "
                            "frame per line); the mesh comes from the checkpoint's expression basis, the camera is the "
                            "identity's first training frame")
    p.add_argument("--split", default="all", choices=["all", "train", "test"], help="which frames of the driving sequence")
    p.add_argument("--smooth", type=float, default=0.0, metavar="SIGMA",
                   help="Gaussian smoothing of the driving sequence over time, std in frames (default 0: off)")
    p.add_argument("--size", type=int, help="output height/width in pixels (default: the data's)")
    p.add_argument("--side-by-side", action="store_true", help="driving frame | result")
    p.add_argument("--max-frames", type=int, help="render at most this many frames")
    p.add_argument("--fps", type=float, help="video frame rate (default: the data's)")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def register(sub) -> None:
    _add(sub.add_parser("render", help="render an identity (optionally driven by another: expression transfer)"), False)
    _add(sub.add_parser("transfer", help="drive identity A with B's expressions (--expressions-from B) or an expression "
                                         "file (--expressions FILE); same code path as render"), True)


def run(args) -> int:
    if args.smooth < 0:
        raise InputError(None, f"--smooth must not be negative (got {args.smooth})")
    at_most("--size", at_least("--size", args.size, 1), 8192)
    at_least("--max-frames", args.max_frames, 1)
    at_least("--fps", args.fps, 1e-3)
    output_file(args.out, VIDEO_SUFFIXES)
    avatar, _ = load_avatar(args.checkpoint)
    expressions = None if args.expressions is None else read_expression_sequence(args.expressions, avatar.info.n_expressions)
    cast = cast_of(avatar, args.identities, names=[n for n in (args.identity, args.expressions_from) if n])
    frames = render_sequence(avatar, cast, args.identity, args.expressions_from, split=args.split, size=args.size,
                             side_by_side=args.side_by_side, max_frames=args.max_frames, expressions=expressions,
                             smooth=args.smooth, progress=not args.quiet)
    fps = args.fps or cast.identities[cast.index(args.expressions_from or args.identity)].fps
    print(f"wrote {write_video(args.out, frames, fps)}")
    return 0
