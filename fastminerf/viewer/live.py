"""Training with a live preview (``fastminerf train --preview``): the viewer serves the
model being trained; training steps and preview render chunks share the model through a
:class:`~fastminerf.viewer.timeshare.TimeShare` whose share the page's slider sets."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from ..train.trainer import prepare_trainer
from .sequences import CastSequences
from .server import PreviewServer
from .timeshare import TimeShare


def serve_forever(server: PreviewServer) -> None:
    """Block until Ctrl-C, then stop the server (Ctrl-C is the normal way out)."""
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("preview stopped", flush=True)
    finally:
        server.stop()


def train_with_preview(cfg, identity_paths: list, out_root: str | Path = "outputs", resume: str | Path | None = None,
                       progress: bool = True, device=None, host: str = "127.0.0.1", port: int = 8080, size: int = 128,
                       render_share: float = 0.25, on_ready: Callable[[PreviewServer], None] | None = None,
                       resume_changes: tuple = (None, [])):
    """Train like :func:`fastminerf.train.trainer.train` while serving the preview.

    The server is started before the first step (``on_ready(server)`` is called then) and
    keeps serving the final model after training; the caller stops it.

    Returns:
        (run folder, final metrics, the running :class:`PreviewServer`).
    """
    trainer = prepare_trainer(cfg, identity_paths, out_root, resume, device, resume_changes)
    steps = trainer.cfg.train.steps
    share = TimeShare(render_share)
    sequences = CastSequences({}, trainer.avatar.info.n_expressions,
                              loaded={d.name: d for d in trainer.cast.identities})
    server = PreviewServer(trainer.avatar, sequences, host=host, port=port, size=size, timeshare=share,
                           status=lambda: f"training step {trainer.step} / {steps}" if share.training_active
                           else f"trained: step {trainer.step}")
    server.start()
    try:
        if on_ready is not None:
            on_ready(server)
        metrics = trainer.run(progress=progress, step_guard=share.training)
    except BaseException:
        server.stop()
        raise
    finally:
        share.close()
    return trainer.run_dir, metrics, server
