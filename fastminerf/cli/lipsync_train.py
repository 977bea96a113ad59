"""``fastminerf lipsync-train``: train the audio → expression model on a cast's tracked clips
and their audio.wav (see :mod:`fastminerf.lipsync.train`)."""
from __future__ import annotations

import torch

from ..lipsync.train import LipsyncConfig, train_lipsync


def add_lipsync_args(p, prefix: str = "") -> None:
    """The model options (shared with ``train --lipsync``, there with a ``lipsync-`` prefix)."""
    p.add_argument(f"--{prefix}features", choices=["mel", "mel+phones"], default="mel",
                   help="audio features: log-mel (any language; default) or log-mel + pocketsphinx English phone "
                        "occupancies (needs the lipsync extra)")
    p.add_argument(f"--{prefix}steps", type=int, default=1500, help="training steps (default 1500)")
    p.add_argument(f"--{prefix}causal", action="store_true", help="no look-ahead (streaming); default: ±7 frames")
    p.add_argument(f"--{prefix}no-speaker-code", action="store_true", help="one model without per-identity codes")
    p.add_argument(f"--{prefix}seed", type=int, default=0)


def config_from_args(args, prefix: str = ""):
    get = lambda k: getattr(args, (prefix + k).replace("-", "_"))  # noqa: E731
    return LipsyncConfig(features=get("features"), steps=get("steps"), causal=get("causal"),
                         speaker_dim=0 if get("no-speaker-code") else 8, seed=get("seed"))


def register(sub) -> None:
    p = sub.add_parser("lipsync-train", help="train the audio → expression model on identities with audio.wav",
                       description="One small temporal network for all identities: audio features at the video's "
                                   "frame rate → the coefficients that move the mouth and jaw, trained on each "
                                   "identity's first 90 %% with a velocity term; written atomically to --out.")
    p.add_argument("--identities", nargs="+", required=True, metavar="DIR",
                   help="identity folders (each with audio.wav) and/or folders holding them")
    p.add_argument("--out", required=True, metavar="FILE", help="model file to write (e.g. RUN/lipsync.pt)")
    add_lipsync_args(p)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    torch.set_num_threads(max(1, args.threads))
    cfg = config_from_args(args)
    path, metrics = train_lipsync(args.identities, args.out, cfg, progress=not args.quiet)
    jc = metrics.get("jaw_corr")
    print(f"wrote {path}" + (f" (held-out jaw-open correlation {jc:.3f}, mouth MAE {metrics['mae']:.4f})" if jc is not None else ""))
    return 0
