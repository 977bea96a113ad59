"""Rendering whole images from an avatar, and building frame batches from a cast.

:func:`render_view` is the one path from (camera, identity, expression, latent) to a
uint8 image: ``render`` / ``transfer`` (through :func:`fastminerf.render.sequence.render_sequence`),
the web preview and the preview benchmark all call it.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch

from ..data.rays import image_rays
from ..model.avatar import Avatar
from ..model.frames import FrameBatch
from .video import to_uint8

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


def background_color(name: str, device="cpu") -> torch.Tensor:
    """[3] colour of a named background ("white" / "black")."""
    if name not in BACKGROUNDS:
        raise ValueError(f"background must be one of {list(BACKGROUNDS)}, got {name!r}")
    return torch.tensor(BACKGROUNDS[name], device=device)


class RenderCancelled(Exception):
    """Raised by a render ``guard`` to abandon an image between chunks (a newer request won)."""


@torch.no_grad()
def render_image(avatar: Avatar, frame: FrameBatch, cam_to_head: torch.Tensor, intrinsics: torch.Tensor, height: int,
                 width: int, background: torch.Tensor, *, chunk: int | None = None,
                 guard: Callable[[], AbstractContextManager] | None = None) -> dict:
    """Render one image of a single frame (``len(frame) == 1``).

    Args:
        cam_to_head: [4, 4]. intrinsics: [4] (fx, fy, cx, cy). background: [3].
        chunk: rays per chunk (default ``render.chunk``).
        guard: optional context-manager factory entered around every chunk (a time-share
            slot, a lock); it may raise :class:`RenderCancelled` to stop early.
    Returns:
        dict with rgb [H, W, 3], opacity [H, W], depth [H, W] (float32, on the avatar's device).
    """
    dev = avatar.canonical.device
    o, d = image_rays(cam_to_head.to(dev).float(), intrinsics.to(dev).float(), height, width)
    chunk = chunk or avatar.rc.chunk
    guard = guard or contextlib.nullcontext
    slots = torch.zeros(o.shape[0], dtype=torch.long, device=dev)
    parts = []
    for s in range(0, o.shape[0], chunk):
        with guard():
            parts.append(avatar.render_rays(o[s : s + chunk], d[s : s + chunk], slots[s : s + chunk], frame, background))
    return {
        "rgb": torch.cat([p["rgb"] for p in parts]).reshape(height, width, 3),
        "opacity": torch.cat([p["opacity"] for p in parts]).reshape(height, width),
        "depth": torch.cat([p["depth"] for p in parts]).reshape(height, width),
    }


def composite_target(rgba: np.ndarray | torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """Ground truth over a background: rgba [..., 4] uint8 or float → rgb [..., 3] float."""
    t = rgba if torch.is_tensor(rgba) else torch.from_numpy(np.array(rgba))
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    bg = background.to(t.device)
    return t[..., :3] * t[..., 3:] + bg * (1 - t[..., 3:])


# ---------------------------------------------------------------------------- views
@dataclass
class ViewCamera:
    """A pinhole camera in head space.

    Attributes:
        cam_to_head: [4, 4] float camera-to-head (OpenCV axes: x right, y down, z forward).
        intrinsics: [4] (fx, fy, cx, cy) in pixels of a ``height`` × ``width`` image.
    """

    cam_to_head: torch.Tensor
    intrinsics: torch.Tensor
    height: int
    width: int

    def resized(self, size: int | None) -> ViewCamera:
        """The same view with its longer side ``size`` pixels (None: unchanged);
        intrinsics scale with the image."""
        if size is None:
            return self
        scale = size / max(self.height, self.width)
        h, w = int(round(self.height * scale)), int(round(self.width * scale))
        return ViewCamera(self.cam_to_head, torch.as_tensor(self.intrinsics, dtype=torch.float32) * scale, h, w)

    @staticmethod
    def from_fov(cam_to_head, fov_y: float, aspect: float, size: int) -> ViewCamera:
        """A centred camera with vertical field of view ``fov_y`` (radians) and
        ``aspect`` = width / height; the longer side is ``size`` pixels."""
        h, w = (size, max(1, round(size * aspect))) if aspect <= 1 else (max(1, round(size / aspect)), size)
        f = 0.5 * h / math.tan(0.5 * fov_y)
        K = torch.tensor([f, f, 0.5 * w, 0.5 * h], dtype=torch.float32)
        return ViewCamera(torch.as_tensor(np.asarray(cam_to_head), dtype=torch.float32), K, h, w)


def look_at(eye, target, up=(0.0, 1.0, 0.0)) -> np.ndarray:
    """[4, 4] camera-to-head of a camera at ``eye`` looking at ``target`` (OpenCV axes;
    image up ≈ ``up``)."""
    eye, target, up = (np.asarray(v, np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, eye
    return m.astype(np.float32)


def expression_mesh(info, identity: int, expression) -> np.ndarray:
    """[V, 3] mesh of ``identity`` with expression coefficients [E]: the identity's neutral
    mesh + Σ e_k · basis_k (the neutral mesh alone when the checkpoint has no basis; the
    cast's shared canonical mesh when it has no per-identity neutral meshes)."""
    base = info.canonical if info.identity_canonicals is None else info.identity_canonicals[identity]
    base = np.asarray(base, np.float32)
    if info.expression_basis is None:
        return base
    e = np.asarray(expression.detach().cpu() if torch.is_tensor(expression) else expression, np.float32)
    basis = np.asarray(info.expression_basis, np.float32)
    return base + np.tensordot(e[: basis.shape[0]], basis, 1)


def _tensor(x, device) -> torch.Tensor:
    """float32 tensor on ``device`` from a tensor or an array (copied: memmaps are read-only)."""
    return (x if torch.is_tensor(x) else torch.from_numpy(np.array(x, dtype=np.float32))).to(device, torch.float32)


@torch.no_grad()
def render_view(avatar: Avatar, camera: ViewCamera, identity: int, expression, latent=None, size: int | None = None, *,
                vertices=None, background: torch.Tensor | None = None, chunk: int | None = None,
                guard: Callable[[], AbstractContextManager] | None = None) -> np.ndarray:
    """Render ``identity`` with ``expression`` seen by ``camera``; the one rendering path
    of ``render``, the preview and the benchmarks.

    Args:
        camera: the view. identity: index into ``avatar.info.names``.
        expression: [E] raw expression coefficients (conditioning).
        latent: [latent_dim] latent code (None: the identity's mean code).
        size: longer image side in pixels (None: the camera's own size).
        vertices: [V, 3] head-space mesh (None: :func:`expression_mesh` of the identity
            and expression).
        background: [3] (None: ``render.eval_background``). chunk, guard: see :func:`render_image`.
    Returns:
        [H, W, 3] uint8 image.
    """
    dev = avatar.canonical.device
    cam = camera.resized(size)
    if vertices is None:
        vertices = expression_mesh(avatar.info, identity, expression)
    lat = avatar.identity_latent(identity) if latent is None else _tensor(latent, dev)
    fb = FrameBatch(vertices=_tensor(vertices, dev)[None], expression=_tensor(expression, dev)[None],
                    identity=torch.tensor([identity], dtype=torch.long, device=dev), latent=lat[None])
    bg = background_color(avatar.rc.eval_background, dev) if background is None else background.to(dev)
    out = render_image(avatar, fb, cam.cam_to_head, cam.intrinsics, cam.height, cam.width, bg, chunk=chunk, guard=guard)
    return to_uint8(out["rgb"])
