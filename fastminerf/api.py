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
from .render.video import to_uint8
from .render.views import ViewCamera, background_color, composite_target, frames_from_cast, render_view
from .train.checkpoint import load_checkpoint


def load_avatar(checkpoint: str | Path, device=None, backend: str | None = None) -> tuple[Avatar, Config]:
    """Rebuild a trained avatar from a checkpoint file or run folder (on ``device``)."""
    return avatar_from_state(load_checkpoint(checkpoint), device, backend)


def avatar_from_state(state: dict, device=None, backend: str | None = None) -> tuple[Avatar, Config]:
    """Rebuild an avatar (eval mode) from a loaded checkpoint dict (see :func:`load_checkpoint`);
    InputError naming the file when the weights do not fit the checkpoint's config."""
    cfg = Config.from_dict(state["config"], state["path"])
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = resolve_backend(backend or cfg.train.backend)
    try:
        avatar = Avatar(cfg.model, cfg.render, CastInfo.from_dict(state["cast"]), backend=backend)
        avatar.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "state mismatch"
        raise InputError(state["path"], f"checkpoint does not match its config ({first})") from None
    avatar.step = int(state["step"])
    return avatar.to(device).eval(), cfg


def cast_of(avatar: Avatar, identity_paths: list | None = None, names: list[str] | None = None) -> Cast:
    """The avatar's training cast (re-read from the folders stored in the checkpoint) or
    the given identity folders; ``names`` keeps only those identities (the others' folders
    need not exist — any subset of the model's identities renders and evaluates)."""
    paths = [Path(p) for p in (identity_paths or avatar.info.identity_roots)]
    if names is not None:
        unknown = [n for n in names if n not in avatar.info.names]
        if unknown:
            raise InputError(None, f"unknown identity {unknown[0]!r}; this model knows: {', '.join(avatar.info.names)}")
        if identity_paths:
            from .data.cast import expand_identity_paths

            paths = [p for p in expand_identity_paths(paths) if p.name in names]
        else:
            paths = [paths[avatar.info.names.index(n)] for n in dict.fromkeys(names)]
        if not paths:
            raise InputError(None, f"none of {', '.join(names)} among the given identity folders")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(missing[0], "identity folder of this checkpoint not found (pass --identities)")
    return load_cast(paths, expression_dims=avatar.info.n_expressions)


def _frames(cast: Cast, identity: int, split: str) -> np.ndarray:
    if split not in ("train", "test", "all"):
        raise InputError(None, f"split must be train, test or all, got {split!r}")
    return cast.frames(split, identity)


def sequence_frames(avatar: Avatar, cast: Cast, identity: str, expressions_from: str | None = None,
                    expressions: np.ndarray | None = None, split: str = "all", pose_from_driver: bool = True,
                    max_frames: int | None = None):
    """What drives each frame of a rendered sequence (no images yet).

    Self-reenactment (neither driver): the identity's own frames of ``split`` (trained
    latent codes on training frames, the mean code elsewhere). ``expressions_from``: that
    identity's frames of ``split`` through :func:`~fastminerf.render.transfer.driven_frames`
    (expression transfer). ``expressions`` [F, E]: raw coefficients through
    :func:`~fastminerf.render.transfer.expression_frames` (static camera).

    Returns:
        (n [int], build(lo, hi) → (FrameBatch, cam_to_head [k, 4, 4], intrinsics [k, 4]) of
        frames lo..hi−1, source global frames [n] or None for an expression array).
    """
    from .render.transfer import driven_frames, expression_frames

    if identity not in avatar.info.names:
        raise InputError(None, f"unknown identity {identity!r}; this model knows: {', '.join(avatar.info.names)}")
    if expressions_from is not None and expressions is not None:
        raise InputError(None, "drive with either another identity or an expression file, not both")
    a = cast.index(identity)
    if expressions is not None:
        e = np.asarray(expressions)[:max_frames]
        return len(e), lambda lo, hi: expression_frames(avatar, cast, a, e[lo:hi]), None
    driver = cast.index(expressions_from) if expressions_from else a
    src = _frames(cast, driver, split)[:max_frames]
    if driver != a:
        return len(src), lambda lo, hi: driven_frames(avatar, cast, a, src[lo:hi], pose_from_driver), src

    def own(lo: int, hi: int):
        f = src[lo:hi]
        fb = frames_from_cast(avatar, cast, f, own_latents=cast.is_train[f])
        return fb, torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f])

    return len(src), own, src


def smoothed_frames(n: int, build, smooth: float = 0.0, chunk: int = 64):
    """Yield (FrameBatch of one frame, cam_to_head [4, 4], intrinsics [4]) for frames 0..n−1
    of ``build`` (see :func:`sequence_frames`), the driving signals Gaussian-smoothed over
    time with std ``smooth`` frames (:mod:`fastminerf.render.smooth`). Frames are built in
    chunks with a halo of 3σ, so the result equals smoothing the whole sequence at once."""
    from .render.smooth import kernel_radius, smooth_frames
    from .render.views import take

    halo = kernel_radius(smooth)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lo, hi = max(0, s - halo), min(n, e + halo)
        fb, c2h, K = build(lo, hi)
        fb = smooth_frames(fb, smooth)
        for j in range(s - lo, e - lo):
            yield take(fb, slice(j, j + 1)), c2h[j], K[j]


@torch.no_grad()
def render_sequence(avatar: Avatar, cast: Cast, identity: str, expressions_from: str | None = None, split: str = "all",
                    size: int | None = None, background: str | None = None, side_by_side: bool = False,
                    pose_from_driver: bool = True, max_frames: int | None = None,
                    expressions: np.ndarray | None = None, smooth: float = 0.0):
    """Render identity ``identity`` over a sequence; yields [H, W, 3] uint8 frames.

    Without a driver the identity's own frames (``split``) are rendered (self-reenactment).
    With ``expressions_from`` the identity is driven by that identity's expressions and head
    poses (expression transfer); with ``expressions`` [F, E] by raw coefficients (needs the
    checkpoint's expression basis; static camera: the identity's first training frame).
    ``smooth`` (frames, 0 = off) Gaussian-smooths the driving sequence over time.
    ``side_by_side`` puts the driving frame left. ``size`` rescales the intrinsics (square
    output of size × size at the cast's aspect).
    """
    if side_by_side and expressions is not None:
        raise InputError(None, "--side-by-side needs a driving video (--expressions-from), not an expression file")
    n, build, src = sequence_frames(avatar, cast, identity, expressions_from, expressions, split, pose_from_driver, max_frames)
    bg = background_color(background or avatar.rc.eval_background, avatar.canonical.device)
    H, W = cast.height, cast.width
    for k, (fb, c2h, K) in enumerate(smoothed_frames(n, build, smooth)):
        img = render_view(avatar, ViewCamera(c2h, K, H, W), int(fb.identity[0]), fb.expression[0], fb.latent[0], size,
                          vertices=fb.vertices[0], background=bg)
        if side_by_side:
            gt = cast.image(src[k])
            h, w = img.shape[:2]
            if (h, w) != (H, W):
                from PIL import Image

                gt = np.asarray(Image.fromarray(gt).resize((w, h), Image.BILINEAR))
            img = np.concatenate([to_uint8(composite_target(gt, bg.cpu())), img], 1)
        yield img
