"""Rendering a sequence of an identity: self-reenactment, expression transfer from another
identity, or driving from an expression array — with optional temporal smoothing.

Example::

    from fastminerf.model.loading import load_avatar, cast_of
    from fastminerf.render.sequence import render_sequence
    avatar, cfg = load_avatar("outputs/synth/tiny_cpu/<run>")
    frames = render_sequence(avatar, cast_of(avatar), "id000", expressions_from="id001")
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..data.cast import Cast
from ..data.identity import Split
from ..errors import InputError
from ..model.avatar import Avatar
from ..model.frames import frames_from_cast, take
from ..progress import Progress
from .smooth import kernel_radius, smooth_frames
from .transfer import driven_frames, expression_frames
from .video import to_uint8
from .views import ViewCamera, background_color, composite_target, render_view


def sequence_frames(avatar: Avatar, cast: Cast, identity: str, expressions_from: str | None = None, *,
                    expressions: np.ndarray | None = None, split: Split = "all", pose_from_driver: bool = True,
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
    if identity not in avatar.info.names:
        raise InputError(None, f"unknown identity {identity!r}; this model knows: {', '.join(avatar.info.names)}")
    if expressions_from is not None and expressions is not None:
        raise InputError(None, "drive with either another identity or an expression file, not both")
    a = cast.index(identity)
    if expressions is not None:
        e = np.asarray(expressions)[:max_frames]
        return len(e), lambda lo, hi: expression_frames(avatar, cast, a, e[lo:hi]), None
    driver = cast.index(expressions_from) if expressions_from else a
    src = cast.frames(split, driver)[:max_frames]
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
    halo = kernel_radius(smooth)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lo, hi = max(0, s - halo), min(n, e + halo)
        fb, c2h, K = build(lo, hi)
        fb = smooth_frames(fb, smooth)
        for j in range(s - lo, e - lo):
            yield take(fb, slice(j, j + 1)), c2h[j], K[j]


@torch.no_grad()
def render_sequence(avatar: Avatar, cast: Cast, identity: str, expressions_from: str | None = None, *, split: Split = "all",
                    size: int | None = None, background: str | None = None, side_by_side: bool = False,
                    pose_from_driver: bool = True, max_frames: int | None = None,
                    expressions: np.ndarray | None = None, smooth: float = 0.0, progress: bool = False):
    """Render identity ``identity`` over a sequence; yields [H, W, 3] uint8 frames.

    Without a driver the identity's own frames (``split``) are rendered (self-reenactment).
    With ``expressions_from`` the identity is driven by that identity's expressions and head
    poses (expression transfer); with ``expressions`` [F, E] by raw coefficients (needs the
    checkpoint's expression basis; static camera: the identity's first training frame).
    ``smooth`` (frames, 0 = off) Gaussian-smooths the driving sequence over time.
    ``side_by_side`` puts the driving frame left. ``size`` rescales the intrinsics (square
    output of size × size at the cast's aspect). ``progress``: a progress line with ETA.
    """
    if side_by_side and expressions is not None:
        raise InputError(None, "--side-by-side needs a driving video (--expressions-from), not an expression file")
    n, build, src = sequence_frames(avatar, cast, identity, expressions_from, expressions=expressions, split=split,
                                    pose_from_driver=pose_from_driver, max_frames=max_frames)
    bg = background_color(background or avatar.rc.eval_background, avatar.canonical.device)
    H, W = cast.height, cast.width
    with Progress(n, "render", unit="frame", enabled=progress) as bar:
        for k, (fb, c2h, K) in enumerate(smoothed_frames(n, build, smooth)):
            img = render_view(avatar, ViewCamera(c2h, K, H, W), int(fb.identity[0]), fb.expression[0], fb.latent[0], size,
                              vertices=fb.vertices[0], background=bg)
            if side_by_side:
                gt = cast.image(src[k])
                h, w = img.shape[:2]
                if (h, w) != (H, W):
                    gt = np.asarray(Image.fromarray(gt).resize((w, h), Image.BILINEAR))
                img = np.concatenate([to_uint8(composite_target(gt, bg.cpu())), img], 1)
            bar.update(k + 1)
            yield img
