"""``fastminerf preview``: a web viewer for any identity, any expression, any view."""
from __future__ import annotations

from ..errors import InputError
from ..lipsync.checkpoint import load_lipsync
from ..lipsync.drive import lipsync_model_path
from ..model.loading import load_avatar
from ..progress import Progress
from ..viewer.audio import AudioDriver
from ..viewer.live import serve_forever
from ..viewer.sequences import load_expressions_file, sequences_for
from ..viewer.server import PreviewServer
from .checks import at_least, at_most, port


def add_server_args(p, prefix: str = "") -> None:
    """--port/--host/--size (with ``prefix``, e.g. "preview-" for ``train --preview``)."""
    p.add_argument(f"--{prefix}port", type=int, default=8080, help="port to serve on (default: 8080; 0: any free port)")
    p.add_argument(f"--{prefix}host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes it)")
    p.add_argument(f"--{prefix}size", type=int, default=256, help="full resolution, longer side in pixels (default: 256)")


def register(sub) -> None:
    p = sub.add_parser("preview", help="web viewer: orbit any identity with expression sliders or a driving sequence",
                       description="Serve a browser viewer of a trained model: orbit/zoom, identity selector, "
                                   "expression sliders, playback of a driving sequence (live transfer), FPS readout.")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    add_server_args(p)
    p.add_argument("--expressions", metavar="FILE",
                   help="an extra driving sequence: .npy [frames, E] or text, one frame per line")
    p.add_argument("--fps", type=float, default=25.0, help="playback rate of --expressions / --audio (default: 25)")
    p.add_argument("--audio", nargs="+", metavar="FILE",
                   help="speech files offered as driving sequences through the lip-sync model (files can also be "
                        "uploaded in the page when a lip-sync model is found)")
    p.add_argument("--lipsync-model", metavar="FILE",
                   help="lip-sync model for --audio and uploads (default: lipsync.pt in the run folder, if any)")
    p.add_argument("--identities", nargs="+", metavar="DIR", help="identity folders if they moved since training")
    p.add_argument("--backend", choices=["auto", "cuda", "tcnn", "torch"], help="ops backend (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no start-up progress line")
    p.set_defaults(func=run)


def check_server_args(args, prefix: str = "") -> None:
    """--port in 0..65535, --size in 1..8192 (one line each, before anything loads)."""
    attr = prefix.replace("-", "_")
    port(f"--{prefix}port", getattr(args, f"{attr}port"))
    at_most(f"--{prefix}size", at_least(f"--{prefix}size", getattr(args, f"{attr}size"), 1), 8192)


def run(args) -> int:
    check_server_args(args)
    at_least("--fps", args.fps, 1e-3)
    with Progress(4, "preview start-up", unit="step", enabled=not args.quiet) as bar:
        bar.update(0, "loading the checkpoint")
        avatar, _ = load_avatar(args.checkpoint, backend=args.backend)
        bar.update(1, "driving sequences")
        sequences = sequences_for(avatar.info, args.identities)
        if args.expressions:
            sequences.add(load_expressions_file(args.expressions, avatar.info.n_expressions, args.fps))
        bar.update(2, "lip-sync model")
        audio = _audio_driver(args, avatar, sequences)
        bar.update(3, "starting the server")
        server = PreviewServer(avatar, sequences, host=args.host, port=args.port, size=args.size, audio=audio).start()
        bar.update(4, "ready")
    print(f"preview of {len(avatar.info.names)} identities (step {avatar.step}) at {server.url}  (Ctrl-C to stop)", flush=True)
    serve_forever(server)
    return 0


def _audio_driver(args, avatar, sequences):
    """An AudioDriver when a lip-sync model is given or sits in the run folder (else None;
    --audio without a model is an error)."""
    try:
        path = lipsync_model_path(args.checkpoint, args.lipsync_model)
    except InputError:
        if args.audio:
            raise
        return None

    driver = AudioDriver(load_lipsync(path), sequences, avatar.info, args.fps)
    for f in args.audio or []:
        driver.add_file(f)
    return driver
