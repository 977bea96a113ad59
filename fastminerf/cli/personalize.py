"""``fastminerf personalize``: fine-tune a trained model on one identity (MI-NeRF personalisation)."""
from __future__ import annotations

from ..train.adapt import personalize


def register(sub) -> None:
    p = sub.add_parser(
        "personalize", help="fine-tune a model on one identity (small lr, conditioning module frozen)",
        description="Fine-tune a trained model on one identity's training frames at a small learning rate with the "
                    "multiplicative module frozen; writes a new run folder (default <run>.personalize-<NAME>) whose "
                    "checkpoint is specialised to that identity, and reports its held-out PSNR before and after.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--identity", required=True, metavar="NAME", help="identity to personalise (a name of the model's cast)")
    p.add_argument("--steps", type=int, default=300, help="fine-tuning steps (default 300)")
    p.add_argument("--lr", type=float, help="hash-grid learning rate (default: the lr the training ended at); MLPs and "
                                            "codes keep their training ratios to it")
    p.add_argument("--freeze", default="conditioning", metavar="GROUPS",
                   help="comma-separated groups kept fixed: grid, mlp, conditioning, identity, latent, or none "
                        "(default: conditioning)")
    p.add_argument("--seconds", type=float, help="use only the first seconds of the identity's training frames")
    p.add_argument("--eval-frames", type=int, help="held-out frames evaluated before/after (default: all)")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--out", help="run folder to write (default: beside the checkpoint's run)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    r = personalize(args.checkpoint, args.identity, steps=args.steps, lr=args.lr, frozen=args.freeze,
                    seconds=args.seconds, out=args.out, identity_paths=args.identities, eval_frames=args.eval_frames,
                    progress=not args.quiet)
    print(f"{r.identity}: held-out PSNR {r.before['psnr']:.2f} -> {r.after['psnr']:.2f} dB "
          f"(masked {r.before['psnr_masked']:.2f} -> {r.after['psnr_masked']:.2f}) after {r.steps} steps in {r.seconds:.0f} s")
    print(f"wrote {r.checkpoint} and {r.run_dir / 'adapt.json'}")
    return 0
