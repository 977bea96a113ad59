"""Library entry points behind the CLI: load a trained avatar, render sequences, evaluate.

Example::

    from fastminerf.api import load_avatar, render_sequence
    avatar, cfg = load_avatar("outputs/synth/tiny_cpu/<run>")
    frames = render_sequence(avatar, cast, "id000", expressions_from="id001")
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .config import Config
from .data.cast import Cast, load_cast
from .errors import InputError
from .model.avatar import Avatar, CastInfo
from .ops._backend import resolve_backend
from .render.transfer import driven_frames
from .render.video import to_uint8
from .render.views import ViewCamera, background_color, composite_target, frames_from_cast, render_view
from .train.checkpoint import load_checkpoint


def load_avatar(checkpoint: str | Path, device=None, backend: str | None = None) -> tuple[Avatar, Config]:
    """Rebuild a trained avatar from a checkpoint file or run folder (on ``device``)."""
    state = load_checkpoint(checkpoint)
    cfg = Config.from_dict(state["config"], state["path"])
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = resolve_backend(backend or cfg.train.backend)
    avatar = Avatar(cfg.model, cfg.render, CastInfo.from_dict(state["cast"]), backend=backend)
    try:
        avatar.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "state mismatch"
        raise InputError(state["path"], f"checkpoint does not match its config ({first})") from None
    avatar.step = int(state["step"])
    return avatar.to(device).eval(), cfg


def cast_of(avatar: Avatar, identity_paths: list | None = None) -> Cast:
    """The avatar's training cast (re-read from the folders stored in the checkpoint) or
    the given identity folders."""
    paths = identity_paths or avatar.info.identity_roots
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(missing[0], "identity folder of this checkpoint not found (pass --identities)")
    return load_cast(paths, expression_dims=avatar.info.n_expressions)


def _frames(cast: Cast, identity: int, split: str) -> np.ndarray:
    if split not in ("train", "test", "all"):
        raise InputError(None, f"split must be train, test or all, got {split!r}")
    return cast.frames(split, identity)


@torch.no_grad()
def render_sequence(avatar: Avatar, cast: Cast, identity: str, expressions_from: str | None = None, split: str = "all",
                    size: int | None = None, background: str | None = None, side_by_side: bool = False,
                    pose_from_driver: bool = True, max_frames: int | None = None):
    """Render identity ``identity`` over a sequence; yields [H, W, 3] uint8 frames.

    Without ``expressions_from`` the identity's own frames (``split``) are rendered
    (self-reenactment). With it, the identity is driven by that identity's expressions and
    head poses (expression transfer). ``side_by_side`` puts the driving frame left.
    ``size`` rescales the intrinsics (square output of size × size at the cast's aspect).
    """
    if identity not in avatar.info.names:
        raise InputError(None, f"unknown identity {identity!r}; this model knows: {', '.join(avatar.info.names)}")
    a = cast.index(identity)
    driver = cast.index(expressions_from) if expressions_from else a
    src = _frames(cast, driver, split)[:max_frames]
    bg = background_color(background or avatar.rc.eval_background, avatar.canonical.device)
    H, W = cast.height, cast.width
    for f in src:
        if driver == a:
            fb = frames_from_cast(avatar, cast, np.array([f]), own_latents=bool(cast.is_train[f]))
            c2h, K = torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f])
        else:
            fb, c2h, K = driven_frames(avatar, cast, a, np.array([f]), pose_from_driver)
            c2h, K = c2h[0], K[0]
        camera = ViewCamera(c2h, K, H, W)
        img = render_view(avatar, camera, int(fb.identity[0]), fb.expression[0], fb.latent[0], size,
                          vertices=fb.vertices[0], background=bg)
        if side_by_side:
            gt = cast.image(f)
            h, w = img.shape[:2]
            if (h, w) != (H, W):
                from PIL import Image

                gt = np.asarray(Image.fromarray(gt).resize((w, h), Image.BILINEAR))
            img = np.concatenate([to_uint8(composite_target(gt, bg.cpu())), img], 1)
        yield img
