"""What a model keeps of its training cast: :class:`CastInfo` (saved in every checkpoint).

Names, frame counts, the canonical mesh and its regions, the marching boxes and the
expression statistics — enough to rebuild the model, to map any cast's identities and
frames onto the model's codes (:meth:`CastInfo.model_index`) and to drive a mesh from
expression sliders without the dataset.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

from ..data.regions import Region
from ..errors import InputError
from .cavity import face_labels, find_mouth_loop, lip_vertex_labels, nearest_sq_distance

#: smallest expression std used for standardising; a coefficient at the floor did not vary in
#: training, so the network learned nothing about it and the avatar zeroes it
EXPR_STD_FLOOR = 1e-3


@dataclass
class CastInfo:
    """What the model keeps of its training cast (saved in checkpoints).

    Attributes:
        names: identity names. frames_per_identity: frame counts (train + test).
        identity_roots: folders the identities were read from.
        expression_names: E names. canonical: [V, 3]. faces: [T, 3]. face_regions: [T] or None.
        head_aabb: [6] box around all training meshes (head space), margin included.
        canonical_aabb: [6] box around the canonical mesh, margin included.
        expr_mean, expr_std: [E] training-set statistics of the expression coefficients.
        expression_basis: optional [E, V, 3] (drives a mesh from expression sliders).
        identity_canonicals: optional [N, V, 3] each identity's neutral mesh (a mesh for any
            identity and expression without the dataset: canonical_i + Σ e_k basis_k).
        mouth_open: optional [V, 3] offset that opens the canonical mouth (``model.canonical_mouth``
            'open'; :func:`open_mouth_offset`), None without lips (regions or a lip-seam loop)
            or open-mouth frames.
        mouth_open_amount: how far it opens the lips (head units; merging ranks keeps the widest).
    """

    names: list[str]
    frames_per_identity: list[int]
    identity_roots: list[str]
    expression_names: list[str]
    canonical: np.ndarray
    faces: np.ndarray
    face_regions: np.ndarray | None
    head_aabb: np.ndarray
    canonical_aabb: np.ndarray
    expr_mean: np.ndarray
    expr_std: np.ndarray
    expression_basis: np.ndarray | None = field(default=None)
    identity_canonicals: np.ndarray | None = field(default=None)
    mouth_open: np.ndarray | None = field(default=None)
    mouth_open_amount: float = 0.0

    @property
    def n_expressions(self) -> int:
        return int(self.expr_mean.shape[0])

    @property
    def frame_offset(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.frames_per_identity)]).astype(np.int64)

    def model_index(self, cast, check_frames: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Where a cast's identities and frames sit in this model (matched by name).

        The cast may hold any subset of the model's identities in any order (e.g. only the
        identity being personalised): a frame's model index — its latent-code row — is its
        identity's first model frame plus its index within the identity.

        Returns:
            (identity [N_cast] int64 model identity of each cast identity,
             frame [NF_cast] int64 model global frame of each cast frame).
        Raises:
            InputError naming the folder of an unknown identity or (``check_frames``) one whose
            frame count differs from the model's (its latent rows would not line up).
        """
        ids = []
        for d in cast.identities:
            if d.name not in self.names:
                raise InputError(d.root, f"identity {d.name!r} is not in this model (it knows {', '.join(self.names)})")
            k = self.names.index(d.name)
            if check_frames and d.n_frames != self.frames_per_identity[k]:
                raise InputError(d.root, f"{d.n_frames} frames, but the model has {self.frames_per_identity[k]} for {d.name!r} (the folder changed?)")
            ids.append(k)
        ids = np.asarray(ids, np.int64)
        return ids, (self.frame_offset[ids[cast.frame_identity]] + cast.frame_local).astype(np.int64)

    @staticmethod
    def from_cast(cast, margin: float = 0.12, max_frames: int = 512) -> CastInfo:
        """Statistics from a :class:`~fastminerf.data.cast.Cast` (boxes from ≤ max_frames training frames)."""
        train = cast.frames("train")
        pick = train[np.linspace(0, len(train) - 1, min(len(train), max_frames)).astype(int)]
        verts = cast.vertices(pick)  # [P, V, 3]
        regions = None if cast.vertex_regions is None else face_labels(cast.vertex_regions, cast.faces)
        e = cast.expressions[train]
        basis = next((d.expression_basis for d in cast.identities if d.expression_basis is not None), None)
        idc = np.stack([d.canonical for d in cast.identities]).astype(np.float32)
        opened, amount = open_mouth_offset(verts, cast.frame_identity[pick], idc, cast.canonical,
                                           lip_labels(cast.canonical, cast.faces, cast.vertex_regions))
        return CastInfo(
            names=cast.names,
            frames_per_identity=[d.n_frames for d in cast.identities],
            identity_roots=[str(d.root.resolve()) for d in cast.identities],
            expression_names=cast.expression_names,
            canonical=cast.canonical,
            faces=cast.faces,
            face_regions=regions,
            head_aabb=_box(verts.reshape(-1, 3), margin),
            canonical_aabb=canonical_box(cast.canonical, opened, margin),
            expr_mean=e.mean(0).astype(np.float32),
            expr_std=np.maximum(e.std(0), EXPR_STD_FLOOR).astype(np.float32),
            expression_basis=None if basis is None else np.asarray(basis)[: cast.n_expressions],
            identity_canonicals=idc,
            mouth_open=opened,
            mouth_open_amount=amount,
        )

    def to_dict(self) -> dict:
        """Plain types for a checkpoint: arrays become CPU tensors, so the checkpoint loads with
        ``torch.load(weights_only=True)``."""
        return {k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                for k, v in asdict(self).items()}

    @staticmethod
    def from_dict(d: dict) -> CastInfo:
        """Inverse of :meth:`to_dict` (also reads checkpoints of 0.1.0, which held numpy arrays)."""
        known = {f.name for f in fields(CastInfo)}
        return CastInfo(**{k: v.numpy() if torch.is_tensor(v) else v for k, v in d.items() if k in known})


#: the canonical mouth is opened as wide as this quantile of the training frames' openings
OPEN_QUANTILE = 0.9


def open_mouth_offset(vertices: np.ndarray, identity: np.ndarray, identity_canonicals: np.ndarray, canonical: np.ndarray,
                      vertex_regions: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """An offset [V, 3] that opens the canonical mesh's mouth like a wide-open training frame.

    With a closed-mouth canonical mesh the upper and lower lips touch, so a point in the gap of
    an open mouth (nearest triangle: a lip's inner rim, offset along its normal) is carried
    *into the opposite lip* in canonical space — the gap's "empty" and the lips' "opaque red"
    fight over the same canonical points (benchmarks/results/mouth.md: with the open canonical
    mouth the demo's mouth box gains +1.1 dB at 800 steps and the teeth appear). Opening the
    canonical mouth (as IMavatar and PointAvatar do) gives the gap its own room.

    Args:
        vertices: [P, V, 3] training meshes (head space). identity: [P] each frame's identity.
        identity_canonicals: [N, V, 3] the identities' neutral meshes. canonical: [V, 3] the
            cast's canonical mesh. vertex_regions: [V] region ids (lips 120/130) or None.
    Returns:
        (offset [V, 3] float32 or None, opening in head units). The offset is the expression
        displacement of the frame at the OPEN_QUANTILE of lip-centroid separation, faded out
        with the distance from the lips (Gaussian, σ = 1.5 × mouth width) so eyes and brows keep
        their neutral shape. None without lip regions or when no frame opens the mouth.
    """
    if vertex_regions is None:
        return None, 0.0
    lower = np.asarray(vertex_regions) == int(Region.LOWER_LIP)
    upper = np.asarray(vertex_regions) == int(Region.UPPER_LIP)
    if not lower.any() or not upper.any() or len(vertices) == 0:
        return None, 0.0

    def gap(v):  # [..., V, 3] → [...] lip-centroid separation
        return np.linalg.norm(v[..., lower, :].mean(-2) - v[..., upper, :].mean(-2), axis=-1)

    opening = gap(vertices) - gap(identity_canonicals)[identity]
    lips = canonical[lower | upper]
    width = float((lips.max(0) - lips.min(0)).max())
    k = int(np.argsort(opening)[min(len(opening) - 1, int(OPEN_QUANTILE * len(opening)))])
    amount = float(opening[k])
    if not np.isfinite(amount) or amount < 0.05 * width:
        return None, 0.0
    fade = np.exp(-nearest_sq_distance(np.asarray(canonical, np.float64), lips) / (1.5 * width) ** 2)
    return (fade[:, None] * (vertices[k] - identity_canonicals[identity[k]])).astype(np.float32), amount


def lip_labels(canonical: np.ndarray, faces: np.ndarray, vertex_regions: np.ndarray | None) -> np.ndarray | None:
    """Per-vertex region ids [V] that mark the lips: the cast's own when they have lips, else
    derived from the lip-seam loop of a region-less mesh (FLAME/INSTA, ``synth --mouth
    lips-only``; :func:`~fastminerf.model.cavity.lip_vertex_labels`), else None."""
    lips = (int(Region.UPPER_LIP), int(Region.LOWER_LIP))
    if vertex_regions is not None and np.isin(vertex_regions, lips).any():
        return np.asarray(vertex_regions)
    loop = find_mouth_loop(np.asarray(canonical), np.asarray(faces), None)
    return None if loop is None else lip_vertex_labels(canonical, loop)


def canonical_box(canonical: np.ndarray, mouth_open: np.ndarray | None, margin: float) -> np.ndarray:
    """[6] box around the canonical mesh, neutral and opened, margin included."""
    pts = canonical if mouth_open is None else np.concatenate([canonical, canonical + mouth_open])
    return _box(pts, margin)


def _box(points: np.ndarray, margin: float) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    pad = margin * (hi - lo).max()
    return np.concatenate([lo - pad, hi + pad]).astype(np.float32)
