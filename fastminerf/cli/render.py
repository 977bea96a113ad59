"""``fastminerf render`` (and its alias ``transfer``): render an identity over a sequence."""
from __future__ import annotations


def _add(p) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--identity", required=True, help="identity to render (a name of the model's cast)")
    p.add_argument("--expressions-from", dest="expressions_from", metavar="NAME",
                   help="drive the identity with this identity's expressions and head poses (expression transfer)")
    p.add_argument("--split", default="all", choices=["all", "train", "test"], help="which frames of the driving sequence")
    p.add_argument("--size", type=int, help="output height/width in pixels (default: the data's)")
    p.add_argument("--side-by-side", action="store_true", help="driving frame | result")
    p.add_argument("--max-frames", type=int, help="render at most this many frames")
    p.add_argument("--fps", type=float, help="video frame rate (default: the data's)")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--out", required=True, help="output video (.mp4 or .gif)")
    p.set_defaults(func=run)


def register(sub) -> None:
    _add(sub.add_parser("render", help="render an identity (optionally driven by another: expression transfer)"))
    _add(sub.add_parser("transfer", help="alias of render --expressions-from: drive identity A with B's expressions"))


def run(args) -> int:
    from ..api import cast_of, load_avatar, render_sequence
    from ..render.video import write_video

    avatar, _ = load_avatar(args.checkpoint)
    cast = cast_of(avatar, args.identities)
    frames = render_sequence(avatar, cast, args.identity, args.expressions_from, args.split, args.size,
                             side_by_side=args.side_by_side, max_frames=args.max_frames)
    fps = args.fps or cast.identities[cast.index(args.expressions_from or args.identity)].fps
    print(f"wrote {write_video(args.out, frames, fps)}")
    return 0
