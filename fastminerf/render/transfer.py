"""Driving identity A with another sequence (expression transfer): one code path for
``render --expressions-from``, ``transfer`` and the transfer evaluation.

The driven mesh of A is A's neutral mesh plus the driver's deformation from its own
neutral mesh (delta transfer: ``canonical_A + (mesh_B,t − canonical_B)``), which is exact
for additive models such as the synthetic head and ICT-FaceKit and a good approximation
for FLAME. The driver's expressions and head poses (cameras) are used; the latent code is
A's mean code.
"""
from __future__ import annotations

import numpy as np
import torch

from ..model.avatar import FrameBatch


def driven_frames(avatar, cast, identity: int, driver_frames: np.ndarray, pose_from_driver: bool = True):
    """Frames of ``cast`` identity ``identity`` driven by global frames ``driver_frames`` [K].

    Returns:
        (FrameBatch of K frames, cam_to_head [K, 4, 4], intrinsics [K, 4]).
        With ``pose_from_driver=False`` the cameras are A's first training frame's.
    """
    dev = avatar.canonical.device
    driver_frames = np.asarray(driver_frames, np.int64)
    b_ids = cast.frame_identity[driver_frames]
    a = cast.identities[identity]
    verts = cast.vertices(driver_frames)
    canon_b = np.stack([cast.identities[b].canonical for b in b_ids])
    verts = a.canonical[None] + (verts - canon_b)
    ident = avatar.info.names.index(cast.names[identity])
    latent = avatar.identity_latent(ident)[None].expand(len(driver_frames), -1)
    fb = FrameBatch(
        vertices=torch.from_numpy(verts.astype(np.float32)).to(dev),
        expression=torch.from_numpy(cast.expressions[driver_frames]).to(dev),
        identity=torch.full((len(driver_frames),), ident, dtype=torch.long, device=dev),
        latent=latent,
    )
    if pose_from_driver:
        c2h, K = cast.cam_to_head[driver_frames], cast.intrinsics[driver_frames]
    else:
        f0 = cast.frames("train", identity)[0]
        c2h = np.repeat(cast.cam_to_head[f0][None], len(driver_frames), 0)
        K = np.repeat(cast.intrinsics[f0][None], len(driver_frames), 0)
    return fb, torch.from_numpy(c2h), torch.from_numpy(K)
