"""Rendering whole images from an avatar, and building frame batches from a cast."""
from __future__ import annotations

import numpy as np
import torch

from ..data.rays import image_rays
from ..model.avatar import Avatar, FrameBatch

BACKGROUNDS = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}


def background_color(name: str, device="cpu") -> torch.Tensor:
    """[3] colour of a named background ("white" / "black")."""
    if name not in BACKGROUNDS:
        raise ValueError(f"background must be one of {list(BACKGROUNDS)}, got {name!r}")
    return torch.tensor(BACKGROUNDS[name], device=device)


def frames_from_cast(avatar: Avatar, cast, frames: np.ndarray, own_latents, key_prefix=None) -> FrameBatch:
    """A FrameBatch for global frames [K] of ``cast``.

    own_latents: bool or [K] bool — use the frame's trained latent code (training frames)
    or the identity's mean code (held-out frames). The cast may be any subset of the
    model's identities: identities and latent rows are matched by name
    (:meth:`CastInfo.model_index`). key_prefix: cache key prefix for the meshes (None: not cached).
    """
    dev = avatar.canonical.device
    frames = np.asarray(frames, np.int64)
    own = np.broadcast_to(np.asarray(own_latents, bool), frames.shape)
    model_id, model_frame = avatar.info.model_index(cast, check_frames=bool(own.any()))
    ids = torch.from_numpy(model_id[cast.frame_identity[frames]]).to(dev)
    latent = None
    if own.any():
        latent = avatar.frame_latents(torch.from_numpy(model_frame[frames]).to(dev))
    if not own.all():
        mean = torch.stack([avatar.identity_latent(int(i)) for i in ids.tolist()])
        latent = mean if latent is None else torch.where(torch.from_numpy(own).to(dev)[:, None], latent, mean)
    return FrameBatch(
        vertices=torch.from_numpy(cast.vertices(frames)).to(dev),
        expression=torch.from_numpy(cast.expressions[frames]).to(dev),
        identity=ids,
        latent=latent,
        keys=None if key_prefix is None else [(key_prefix, int(f)) for f in frames],
    )


def take(frames: FrameBatch, index) -> FrameBatch:
    """Rows ``index`` (a slice or [k] indices) of a FrameBatch."""
    return FrameBatch(vertices=frames.vertices[index], expression=frames.expression[index], identity=frames.identity[index],
                      latent=frames.latent[index],
                      keys=None if frames.keys is None else _take_list(frames.keys, index))


def _take_list(items: list, index) -> list:
    return items[index] if isinstance(index, slice) else [items[int(i)] for i in np.asarray(index).reshape(-1)]


@torch.no_grad()
def render_image(avatar: Avatar, frame: FrameBatch, cam_to_head: torch.Tensor, intrinsics: torch.Tensor, height: int,
                 width: int, background: torch.Tensor, chunk: int | None = None) -> dict:
    """Render one image of a single frame (``len(frame) == 1``).

    Args:
        cam_to_head: [4, 4]. intrinsics: [4] (fx, fy, cx, cy). background: [3].
    Returns:
        dict with rgb [H, W, 3], opacity [H, W], depth [H, W] (float32, on the avatar's device).
    """
    dev = avatar.canonical.device
    o, d = image_rays(cam_to_head.to(dev).float(), intrinsics.to(dev).float(), height, width)
    chunk = chunk or avatar.rc.chunk
    slots = torch.zeros(o.shape[0], dtype=torch.long, device=dev)
    parts = [avatar.render_rays(o[s : s + chunk], d[s : s + chunk], slots[s : s + chunk], frame, background)
             for s in range(0, o.shape[0], chunk)]
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
