"""``fastminerf lipsync``: render an identity of a trained model speaking an audio file
(the audio muxed into the mp4). ``fastminerf lipsync-train`` lives in :mod:`.lipsync_train`."""
from __future__ import annotations

import time

import torch

from ..errors import InputError
from ..lipsync.audio import load_audio
from ..lipsync.checkpoint import load_lipsync
from ..lipsync.drive import drive_expressions, lipsync_model_path, render_driven, save_expressions
from ..model.loading import cast_of, load_avatar
from ..progress import track
from ..render.video import write_video


def register(sub) -> None:
    p = sub.add_parser("lipsync", help="render an identity speaking an audio file (audio → expressions → avatar)",
                       description="Drive identity A of a trained model with speech: the lip-sync model predicts A's "
                                   "mouth and jaw coefficients from the audio, A's own frames give the rest and the head "
                                   "pose, and the audio is muxed into the mp4.")
    p.add_argument("--checkpoint", required=True, help="avatar checkpoint file or run folder")
    p.add_argument("--identity", required=True, help="identity to animate (any name of the model's cast)")
    p.add_argument("--audio", required=True, metavar="FILE", help="speech: wav / mp3 / mp4 / anything ffmpeg reads "
                                                                  "(resampled to 16 kHz mono)")
    p.add_argument("--out", required=True, help="output video (.mp4, with the audio)")
    p.add_argument("--model", metavar="FILE", help="lip-sync model (default: lipsync.pt in the checkpoint's run folder)")
    p.add_argument("--pose", choices=["loop", "hold"], default="loop",
                   help="head pose and non-mouth expressions from A's frames played forward and back (loop, default) "
                        "or A's first frame held still (hold)")
    p.add_argument("--smooth", type=float, default=1.0, metavar="SIGMA",
                   help="Gaussian smoothing of the predicted mouth over time, std in frames (default 1; 0: off)")
    p.add_argument("--size", type=int, help="output height/width in pixels (default: the data's)")
    p.add_argument("--save-expressions", metavar="FILE.npy",
                   help="also save the [frames, E] expressions (fastminerf render --expressions reads them)")
    p.add_argument("--no-render", action="store_true", help="only predict (with --save-expressions): no video")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.no_render and not args.save_expressions:
        raise InputError(None, "--no-render needs --save-expressions (otherwise nothing is written)")
    if not args.no_render and not args.out.lower().endswith(".mp4"):
        raise InputError(args.out, "the lip-sync video must be an .mp4 (it carries the audio)")
    if args.size is not None and args.size < 16:
        raise InputError(None, f"--size must be at least 16 (got {args.size})")
    audio = load_audio(args.audio)  # cheap checks first: bad audio fails before any model loads

    if args.threads:
        torch.set_num_threads(args.threads)
    lip = load_lipsync(lipsync_model_path(args.checkpoint, args.model))
    avatar, _ = load_avatar(args.checkpoint)
    cast = cast_of(avatar, args.identities, names=[args.identity])
    seq = drive_expressions(lip, audio, cast, args.identity, args.pose, args.smooth)
    t = seq.timings
    print(f"{audio.path.name}: {audio.duration:.2f} s → {seq.n_frames} frames at {seq.fps:g} fps; features + lip-sync "
          f"model {t['predict_s']:.2f} s ({t['audio_s'] / max(t['predict_s'], 1e-9):.0f}× real time)")
    if args.save_expressions:
        print(f"wrote {save_expressions(args.save_expressions, seq.expressions)}")
    if args.no_render:
        return 0
    t0 = time.perf_counter()
    frames = track(render_driven(avatar, cast, seq, args.size), seq.n_frames, "lipsync render", "frame", not args.quiet)
    out = write_video(args.out, frames, seq.fps, audio=audio.path)
    print(f"wrote {out} ({seq.n_frames} frames rendered in {time.perf_counter() - t0:.1f} s, audio muxed)")
    return 0
