"""The lip-surface prior: nothing real lies between the camera and the tracked lips.

A skin-coloured shell in front of the lips satisfies the skin rays around the mouth (it sits
where they see skin anyway) and is only mildly wrong for the lips, which differ from skin by
~0.1 in green and blue; photometric training keeps it (measured with benchmarks/lip_depth.py
on the demo cast at 800 steps: the lip rays' rendered depth 6–9 mm in front of the tracked
lips). For rays whose first hit on the frame's mesh is a lip triangle, the weight rendered more
than ``LIP_PRIOR_STEPS`` march steps in front of that hit is penalised
(``train.lip_surface_weight``; :meth:`fastminerf.model.avatar.Avatar.loss_terms`).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.regions import Region
from ..ops.embed import MeshSet
from .cast_info import CastInfo, lip_labels
from .cavity import face_labels

#: weight this many march steps in front of the lips' hit is tolerated (a surface's own spread)
LIP_PRIOR_STEPS = 1.5


def lip_face_mask(info: CastInfo, regions: np.ndarray, n_cavity_faces: int | None) -> torch.Tensor:
    """[T (+ cavity faces)] bool: the lip triangles — from the cast's region ids (``regions``
    [T]), or, for a region-less mesh (FLAME/INSTA, lips-only), derived from its lip seam
    (:func:`~fastminerf.model.cast_info.lip_labels`); cavity faces are never lips."""
    vl = lip_labels(np.asarray(info.canonical), np.asarray(info.faces), None) if info.face_regions is None else None
    lip_regions = regions if vl is None else face_labels(vl, np.asarray(info.faces))
    lips = torch.from_numpy(np.isin(lip_regions, (int(Region.UPPER_LIP), int(Region.LOWER_LIP))))
    return lips if n_cavity_faces is None else torch.cat([lips, torch.zeros(n_cavity_faces, dtype=torch.bool)])


def lip_front(origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor, meshes: MeshSet, t_hit: torch.Tensor | None,
              ray_of_sample: torch.Tensor, t_mid: torch.Tensor, weights: torch.Tensor, lip_faces: torch.Tensor,
              tolerance: float) -> dict:
    """Which rays first hit a lip, and how much of their weight lies in front of it.

    Args:
        origins, dirs: [R, 3] rays; slots: [R] their frames; meshes: the frames' meshes.
        t_hit: [R] first hit of each ray on its mesh (inf: none), or None (no samples).
        ray_of_sample, t_mid, weights: [S] each sample's ray, mid-point distance, render weight.
        lip_faces: [T] bool lip triangles of ``meshes``. tolerance: distance in front of the hit
            that is not counted (head units).
    Returns:
        {"lip_ray": [R] bool, "lip_front": [R] weight more than ``tolerance`` in front of the hit}.
    """
    R = origins.shape[0]
    lip_ray = torch.zeros(R, dtype=torch.bool, device=origins.device)
    if t_hit is None:
        return {"lip_ray": lip_ray, "lip_front": torch.zeros(R, device=origins.device)}
    hit = torch.isfinite(t_hit)
    idx = hit.nonzero().reshape(-1)
    if idx.numel():
        face, _ = meshes.nearest(origins[idx] + dirs[idx] * t_hit[idx, None], slots[idx], max_dist=1e6)
        lip_ray[idx] = (face >= 0) & lip_faces[face.clamp_min(0)]
    t_safe = torch.where(hit, t_hit, torch.full_like(t_hit, float("inf")))
    ahead = (t_mid < t_safe[ray_of_sample] - tolerance) & lip_ray[ray_of_sample]
    front = torch.zeros(R, dtype=weights.dtype, device=weights.device).index_add_(0, ray_of_sample, weights * ahead)
    return {"lip_ray": lip_ray, "lip_front": front}
