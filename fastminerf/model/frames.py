"""What drives the frames a model renders: :class:`FrameBatch`, and building one from a cast.

A FrameBatch holds K frames' geometry (head-space meshes) and conditioning (expressions,
identity indices, latent codes). :class:`CastFrames` is the one place that turns a cast's
global frames into a FrameBatch for a model — training steps, evaluation, rendering and
the benchmarks all go through it; it matches the cast's identities to the model's by name
(:meth:`~fastminerf.model.cast_info.CastInfo.model_index`), so any subset of the model's
identities works.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class FrameBatch:
    """K frames to render: geometry and conditioning.

    Attributes:
        vertices: [K, V, 3] head-space meshes. expression: [K, E] raw coefficients.
        identity: [K] int64 identity index. latent: [K, latent_dim] latent codes.
        keys: optional K cache keys for static meshes (acceleration structures are reused).
        mouth_expression: optional [K, E] raw coefficients for the samples of the virtual
            mouth cavity (training with ``train.dropout_keeps_mouth``: the frames' own codes
            where ``expression`` holds the dropped ones); None = ``expression`` everywhere.
    """

    vertices: torch.Tensor
    expression: torch.Tensor
    identity: torch.Tensor
    latent: torch.Tensor
    keys: list | None = None
    mouth_expression: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.vertices.shape[0]


def take(frames: FrameBatch, index) -> FrameBatch:
    """Rows ``index`` (a slice or [k] indices) of a FrameBatch."""
    return FrameBatch(vertices=frames.vertices[index], expression=frames.expression[index], identity=frames.identity[index],
                      latent=frames.latent[index], keys=None if frames.keys is None else _take_list(frames.keys, index),
                      mouth_expression=None if frames.mouth_expression is None else frames.mouth_expression[index])


def _take_list(items: list, index) -> list:
    return items[index] if isinstance(index, slice) else [items[int(i)] for i in np.asarray(index).reshape(-1)]


class CastFrames:
    """FrameBatches of a cast's global frames for one model.

    Args:
        avatar: the model (its ``info`` maps identities and frames, its codes give latents).
        cast: a :class:`~fastminerf.data.cast.Cast` holding any subset of the model's identities.
        cache_meshes: give every frame a cache key, so the meshes' acceleration structures
            are built once and reused across steps (training: the meshes never change).
        gpu_cache_bytes: on a CUDA model, keep all frames' vertices on the GPU when they fit
            in this many bytes (a step then gathers its meshes there instead of copying them).
    """

    def __init__(self, avatar, cast, *, cache_meshes: bool = False, gpu_cache_bytes: int = 0):
        self.avatar, self.cast = avatar, cast
        self.model_identity, self.model_frame = avatar.info.model_index(cast, check_frames=False)
        self._frames_checked = False
        self.token = uuid.uuid4().hex if cache_meshes else None
        dev = avatar.canonical.device
        self.gpu_vertices = None
        if dev.type == "cuda" and 0 < cast.n_frames * cast.canonical.shape[0] * 12 <= gpu_cache_bytes:
            self.gpu_vertices = torch.from_numpy(cast.vertices(np.arange(cast.n_frames))).to(dev)

    def batch(self, frames, own_latents=True) -> FrameBatch:
        """A FrameBatch of global frames [K] (array or tensor).

        own_latents: bool or [K] bool — each frame's own trained latent code (training
        frames; with gradients when grad mode is on) or its identity's mean code (held-out,
        driven and novel frames). Own codes need the cast's frame counts to match the model's.
        """
        dev = self.avatar.canonical.device
        f = frames.detach().cpu().numpy() if torch.is_tensor(frames) else np.asarray(frames, np.int64)
        f = f.astype(np.int64, copy=False).reshape(-1)
        own = np.broadcast_to(np.asarray(own_latents, bool), f.shape)
        ids = torch.from_numpy(self.model_identity[self.cast.frame_identity[f]]).to(dev)
        latent = None
        if own.any():
            if not self._frames_checked:
                self.avatar.info.model_index(self.cast, check_frames=True)
                self._frames_checked = True
            latent = self.avatar.frame_latents(torch.from_numpy(self.model_frame[f]).to(dev))
        if not own.all():
            mean = self.avatar.identity_latents(ids)
            latent = mean if latent is None else torch.where(torch.from_numpy(own.copy()).to(dev)[:, None], latent, mean)
        if self.gpu_vertices is not None:
            vertices = self.gpu_vertices[torch.from_numpy(f).to(dev)]
        else:
            vertices = torch.from_numpy(self.cast.vertices(f)).to(dev)
        return FrameBatch(
            vertices=vertices,
            expression=torch.from_numpy(self.cast.expressions[f]).to(dev),
            identity=ids,
            latent=latent,
            keys=None if self.token is None else [(self.token, int(x)) for x in f],
        )


def frames_from_cast(avatar, cast, frames, own_latents) -> FrameBatch:
    """One FrameBatch of global frames [K] of ``cast`` (see :meth:`CastFrames.batch`)."""
    return CastFrames(avatar, cast).batch(frames, own_latents)
