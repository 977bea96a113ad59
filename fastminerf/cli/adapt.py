"""``fastminerf adapt``: add an unseen identity to a trained model from a few seconds of video."""
from __future__ import annotations

from ..train.adapt import add_identity


def register(sub) -> None:
    p = sub.add_parser(
        "adapt", help="add a new identity from its first seconds (codes only; the others render exactly as before)",
        description="Grow a trained model by one identity: a new identity code and latent codes are optimised on the "
                    "first seconds of its video with the network frozen (every other identity renders bit-for-bit as "
                    "before), then optionally personalised. Writes a new run folder (default <run>.adapt-<NAME>).")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--data", required=True, metavar="DIR", help="the new identity's folder (same head model as the cast)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of video used, from its start (default 3)")
    p.add_argument("--steps", type=int, default=300, help="steps optimising the new codes (default 300)")
    p.add_argument("--lr", type=float, help="learning rate of the new codes (default: the training's lr_codes)")
    p.add_argument("--personalize-steps", type=int, default=0, metavar="P",
                   help="then fine-tune the network on the same frames for P steps (default 0; P > 0 specialises the "
                        "model to the new identity, the others then render differently)")
    p.add_argument("--personalize-lr", type=float, help="hash-grid lr of the personalisation (see personalize --lr)")
    p.add_argument("--eval-frames", type=int, help="held-out frames evaluated before/after (default: all)")
    p.add_argument("--out", help="run folder to write (default: beside the checkpoint's run)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    r = add_identity(args.checkpoint, args.data, seconds=args.seconds, steps=args.steps, lr=args.lr,
                     personalize_steps=args.personalize_steps, personalize_lr=args.personalize_lr, out=args.out,
                     eval_frames=args.eval_frames, progress=not args.quiet)
    print(f"added {r.identity} from {r.frames} frames: held-out PSNR {r.before['psnr']:.2f} (initial code) -> "
          f"{r.after['psnr']:.2f} dB (masked {r.after['psnr_masked']:.2f}) in {r.seconds:.0f} s")
    print(f"wrote {r.checkpoint} and {r.run_dir / 'adapt.json'}")
    return 0
