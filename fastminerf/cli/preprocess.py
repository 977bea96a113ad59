"""``fastminerf preprocess VIDEO [VIDEO ...] --out DIR``: real videos → trainable identities.

One identity folder per video under DIR (named after the video stem, or ``--name``), so
``fastminerf train --identities DIR`` takes them directly. Needs the ``preprocess`` extra
(MediaPipe 0.10.21, OpenCV 4) and ICT-FaceKit (``--face-model`` or $FASTMINERF_FACE_MODEL).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..data.preprocess.face_model_ict import load_ict, resolve_path
from ..data.preprocess.pipeline import PreprocessOptions, preprocess_video
from ..data.preprocess.tracking import import_cv2, import_mediapipe
from ..errors import InputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("preprocess", help="monocular video(s) → identity folder(s) (MediaPipe + ICT-FaceKit fit)",
                       description="Real talking-head videos → trainable identities, offline: MediaPipe tracking, "
                                   "a batched ICT-FaceKit fit, a head-centred crop, a head-and-neck matte, audio.wav, "
                                   "and QA in <identity>/qa/.")
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="talking-head clip(s), ≥ 1 s, one person each")
    p.add_argument("--out", required=True, metavar="DIR", help="folder that receives one identity folder per video")
    p.add_argument("--name", help="identity name (only with one video; default: the video's file stem)")
    p.add_argument("--face-model", metavar="PATH",
                   help="ICT-FaceKit: the folder containing FaceXModel/, or its .tar.xz (default: $FASTMINERF_FACE_MODEL)")
    p.add_argument("--landmarker", metavar="PATH",
                   help="MediaPipe face_landmarker.task: adds ARKit blendshape scores and head pose to start the fit from")
    p.add_argument("--size", type=int, default=512, help="side of the square output crop in pixels (default 512)")
    p.add_argument("--max-frames", type=int, metavar="N", help="only the first N frames of each video")
    p.add_argument("--no-meshes", action="store_true", help="do not write meshes/NNNNN.obj (the cache keeps the vertices)")
    p.add_argument("--no-seg", action="store_true", help="do not write seg_mask/NNNNN.png (INSTA region ids)")
    p.add_argument("--overwrite", action="store_true", help="replace existing identity folders")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    videos = [Path(v) for v in args.videos]
    if args.name and len(videos) > 1:
        raise InputError(None, "--name works with one video only")
    if args.size < 32:
        raise InputError(None, f"--size {args.size} is too small (at least 32)")
    for v in videos:  # cheap checks first: nothing is computed for a run that must fail
        if not v.is_file():
            raise InputError(v, "video file not found")
    if args.landmarker and not Path(args.landmarker).is_file():
        raise InputError(args.landmarker, "face landmarker model (.task) not found")
    import_mediapipe(), import_cv2()  # a missing extra is one line, before any other work
    resolve_path(args.face_model)
    names = [args.name or v.stem for v in videos]
    for n in names:
        if (Path(args.out) / n).exists() and not args.overwrite:
            raise InputError(Path(args.out) / n, "already exists (pass --overwrite to replace it)")

    model = load_ict(args.face_model)
    opt = PreprocessOptions(size=args.size, landmarker=args.landmarker, max_frames=args.max_frames,
                            overwrite=args.overwrite, write_meshes=not args.no_meshes,
                            write_seg=not args.no_seg)
    for v, n in zip(videos, names):
        preprocess_video(v, args.out, model, name=n, options=opt)
    return 0
