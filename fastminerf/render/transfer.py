"""Driving identity A with another sequence (expression transfer): one code path for
``render --expressions-from``, ``transfer`` and the transfer evaluation.

The driven mesh of A is A's neutral mesh plus the driver's deformation from its own
neutral mesh (delta transfer: ``canonical_A + (mesh_B,t − canonical_B)``), which is exact
for additive models such as the synthetic head and ICT-FaceKit and a good approximation
for FLAME. The driver's expressions and head poses (cameras) are used; the latent code is
A's mean code.

Driving from an expression file (no driver video) builds the mesh from the checkpoint's
expression basis instead: ``canonical_A + Σ_k e_k · basis_k`` — the same mesh the delta
transfer gives for an additive head model — seen from A's first training camera.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..model.frames import FrameBatch


def driven_frames(avatar, cast, identity: int, driver_frames: np.ndarray, pose_from_driver: bool = True):
    """Frames of ``cast`` identity ``identity`` driven by global frames ``driver_frames`` [K].

    Returns:
        (FrameBatch of K frames, cam_to_head [K, 4, 4], intrinsics [K, 4]).
        With ``pose_from_driver=False`` the cameras are A's first training frame's.
    """
    driver_frames = np.asarray(driver_frames, np.int64)
    b_ids = cast.frame_identity[driver_frames]
    verts = cast.vertices(driver_frames)
    canon_b = np.stack([cast.identities[b].canonical for b in b_ids])
    verts = cast.identities[identity].canonical[None] + (verts - canon_b)
    if pose_from_driver:
        c2h, K = cast.cam_to_head[driver_frames], cast.intrinsics[driver_frames]
    else:
        c2h, K = own_camera(cast, identity, len(driver_frames))
    return _driven(avatar, cast.names[identity], verts, cast.expressions[driver_frames], c2h, K)


def expression_frames(avatar, cast, identity: int, expressions: np.ndarray):
    """Frames of ``cast`` identity ``identity`` driven by raw expression coefficients [K, E]
    (e.g. from a file): mesh = A's neutral mesh + Σ_k e_k · basis_k with the checkpoint's
    ``expression_basis``; camera = A's first training frame; latent = A's mean code.

    Returns:
        (FrameBatch of K frames, cam_to_head [K, 4, 4], intrinsics [K, 4]).
    Raises:
        InputError when the checkpoint has no expression basis or E does not match.
    """
    info = avatar.info
    if info.expression_basis is None:
        raise InputError(None, "this checkpoint has no expression basis (its data came without expression_basis.npy): "
                               "drive with --expressions-from NAME instead of an expression file")
    e = np.asarray(expressions, np.float32)
    if e.ndim != 2 or e.shape[1] != info.n_expressions:
        raise InputError(None, f"expressions have shape {e.shape}, expected (frames, {info.n_expressions})")
    name = cast.names[identity]
    k = info.names.index(name)
    neutral = info.identity_canonicals[k] if info.identity_canonicals is not None else cast.identities[identity].canonical
    basis = np.asarray(info.expression_basis, np.float32)  # [E, V, 3]
    verts = np.asarray(neutral, np.float32)[None] + np.einsum("ke,evc->kvc", e, basis)
    c2h, K = own_camera(cast, identity, len(e))
    return _driven(avatar, name, verts, e, c2h, K)


def own_camera(cast, identity: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A's first training frame's camera, repeated: (cam_to_head [n, 4, 4], intrinsics [n, 4])."""
    f0 = cast.frames("train", identity)[0]
    return np.repeat(cast.cam_to_head[f0][None], n, 0), np.repeat(cast.intrinsics[f0][None], n, 0)


def _driven(avatar, name: str, verts: np.ndarray, expressions: np.ndarray, c2h: np.ndarray, K: np.ndarray):
    """FrameBatch of model identity ``name`` with driven meshes [K, V, 3] and expressions [K, E]."""
    dev = avatar.canonical.device
    ident = avatar.info.names.index(name)
    n = len(verts)
    fb = FrameBatch(
        vertices=torch.from_numpy(np.ascontiguousarray(verts, np.float32)).to(dev),
        expression=torch.from_numpy(np.ascontiguousarray(expressions, np.float32)).to(dev),
        identity=torch.full((n,), ident, dtype=torch.long, device=dev),
        latent=avatar.identity_latent(ident)[None].expand(n, -1),
    )
    return fb, torch.from_numpy(np.ascontiguousarray(c2h)), torch.from_numpy(np.ascontiguousarray(K))
