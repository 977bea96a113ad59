"""A cast: many identities that share one mesh topology and one expression size.

:func:`load_cast` reads identity folders (our layout or INSTA's), checks that they can be
trained together, and exposes flat per-frame tables over all identities (a global frame
index runs over identity 0's frames, then identity 1's, ...). Per-identity arrays stay
memory-mapped; only small tables are copied.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .identity import IdentityData, Split, split_mask
from .insta import read_insta_identity
from .layout import TRAIN_JSON, is_fastminerf_identity, read_identity


def expand_identity_paths(paths: list[str | Path]) -> list[Path]:
    """Identity folders from user paths.

    Each path is an identity folder (it holds transforms_train.json) or a cast folder (its
    sub-folders that hold transforms_train.json, sorted by name).
    """
    out: list[Path] = []
    if not paths:
        raise InputError(None, "no identity folders given")
    for p in map(Path, paths):
        if not p.exists():
            raise InputError(p, "not found")
        if not p.is_dir():
            raise InputError(p, "not a directory (expected an identity folder or a folder of identity folders)")
        if (p / TRAIN_JSON).is_file():
            out.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if d.is_dir() and (d / TRAIN_JSON).is_file())
        if not subs:
            raise InputError(p, f"no {TRAIN_JSON} here or in its sub-folders (empty or not an identity folder)")
        out.extend(subs)
    return out


def read_any_identity(path: str | Path) -> IdentityData:
    """Read an identity folder in our layout or INSTA's (detected from the JSON)."""
    path = Path(path)
    return read_identity(path) if is_fastminerf_identity(path) else read_insta_identity(path)


@dataclass
class Cast:
    """Identities trained together.

    Attributes:
        identities: the per-identity data, in order.
        faces: [T, 3] int32 shared topology.
        canonical: [V, 3] float32 shared canonical mesh = mean of the identities' neutral
            meshes (one canonical space, hence one hash grid, for everyone).
        frame_identity: [NF] int64 identity index of each global frame.
        frame_local: [NF] int64 frame index within its identity.
        frame_offset: [N+1] int64 first global frame of each identity.
        is_train: [NF] bool. intrinsics: [NF, 4] (fx, fy, cx, cy). cam_to_head: [NF, 4, 4].
        expressions: [NF, E] float32 (truncated to ``expression_dims`` when asked).
        width, height: shared image size.
        vertex_regions: [V] uint8 or None.
    """

    identities: list[IdentityData]
    faces: np.ndarray
    canonical: np.ndarray
    frame_identity: np.ndarray
    frame_local: np.ndarray
    frame_offset: np.ndarray
    is_train: np.ndarray
    intrinsics: np.ndarray
    cam_to_head: np.ndarray
    expressions: np.ndarray
    width: int
    height: int
    vertex_regions: np.ndarray | None

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.identities]

    @property
    def n_identities(self) -> int:
        return len(self.identities)

    @property
    def n_frames(self) -> int:
        return int(self.frame_identity.shape[0])

    @property
    def n_expressions(self) -> int:
        return int(self.expressions.shape[1])

    @property
    def expression_names(self) -> list[str]:
        return self.identities[0].expression_names[: self.n_expressions]

    def index(self, name: str) -> int:
        """Identity index of ``name`` (InputError listing the known names otherwise)."""
        if name not in self.names:
            raise InputError(None, f"unknown identity {name!r}; known: {', '.join(self.names)}")
        return self.names.index(name)

    def frames(self, split: Split = "train", identity: int | None = None) -> np.ndarray:
        """Global frame indices of a split ("train", "test", "all"), optionally of one identity."""
        mask = split_mask(self.is_train, split)
        if identity is not None:
            mask = mask & (self.frame_identity == identity)
        return np.flatnonzero(mask)

    def vertices(self, frames: np.ndarray) -> np.ndarray:
        """[K, V, 3] float32 tracked vertices of global frames [K]."""
        frames = np.asarray(frames, np.int64)
        out = np.empty((frames.shape[0], self.canonical.shape[0], 3), np.float32)
        ids = self.frame_identity[frames]
        for k in np.unique(ids):
            sel = ids == k
            out[sel] = self.identities[k].vertices[self.frame_local[frames[sel]]]
        return out

    def pixels(self, frames: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """[B, 4] uint8 RGBA at (ys[B], xs[B]) of global frames[B] (one gather per identity)."""
        out = np.empty((frames.shape[0], 4), np.uint8)
        ids = self.frame_identity[frames]
        for k in np.unique(ids):
            sel = np.flatnonzero(ids == k)
            d = self.identities[k]
            local = self.frame_local[frames[sel]]
            if d.images is not None:
                out[sel] = d.images[local, ys[sel], xs[sel]]
            else:  # no image cache: decode the frames this batch touches
                for f in np.unique(local):
                    s2 = sel[local == f]
                    out[s2] = d.image(int(f))[ys[s2], xs[s2]]
        return out

    def image(self, frame: int) -> np.ndarray:
        """[H, W, 4] uint8 of a global frame."""
        return self.identities[int(self.frame_identity[frame])].image(int(self.frame_local[frame]))


def load_cast(paths: list[str | Path], expression_dims: int | None = None) -> Cast:
    """Read and cross-check identities for joint training.

    Args:
        paths: identity folders and/or folders of identity folders.
        expression_dims: keep only the first E expression coefficients (INSTA uses 16).
    Raises:
        InputError naming the folder when identities differ in topology, expression size
        or image size, share a name, or have no training frames.
    """
    dirs = expand_identity_paths(paths)
    ids = [read_any_identity(d) for d in dirs]
    first = ids[0]
    seen: dict[str, Path] = {}
    for d in ids:
        if d.name in seen:
            raise InputError(d.root, f"identity name {d.name!r} is used twice (also {seen[d.name]})")
        seen[d.name] = d.root
        if d.faces.shape != first.faces.shape or not np.array_equal(d.faces, first.faces):
            raise InputError(d.root, f"mesh topology differs from {first.name} ({d.n_vertices} vertices / {d.faces.shape[0]} faces vs {first.n_vertices} / {first.faces.shape[0]})")
        if d.n_expressions != first.n_expressions and expression_dims is None:
            raise InputError(d.root, f"{d.n_expressions} expression coefficients, {first.name} has {first.n_expressions}")
        if expression_dims is not None and d.n_expressions < expression_dims:
            raise InputError(d.root, f"{d.n_expressions} expression coefficients, fewer than expression_dims={expression_dims}")
        if (d.width, d.height) != (first.width, first.height):
            raise InputError(d.root, f"images are {d.width}x{d.height}, {first.name}'s are {first.width}x{first.height}")
        if not d.is_train.any():
            raise InputError(d.root, "no training frames")
    E = expression_dims or first.n_expressions
    counts = np.array([d.n_frames for d in ids])
    offset = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    regions = next((d.vertex_regions for d in ids if d.vertex_regions is not None), None)
    return Cast(
        identities=ids,
        faces=first.faces.astype(np.int32),
        canonical=np.mean([d.canonical for d in ids], axis=0).astype(np.float32),
        frame_identity=np.repeat(np.arange(len(ids)), counts).astype(np.int64),
        frame_local=np.concatenate([np.arange(c) for c in counts]).astype(np.int64),
        frame_offset=offset,
        is_train=np.concatenate([d.is_train for d in ids]),
        intrinsics=np.concatenate([d.intrinsics for d in ids]).astype(np.float32),
        cam_to_head=np.concatenate([d.cam_to_head for d in ids]).astype(np.float32),
        expressions=np.concatenate([np.asarray(d.expressions)[:, :E] for d in ids]).astype(np.float32),
        width=first.width,
        height=first.height,
        vertex_regions=regions,
    )
