"""One identity's sequence in memory: the typed structure both readers produce.

Both on-disk layouts (ours, :mod:`fastminerf.data.layout`; INSTA's,
:mod:`fastminerf.data.insta`) are read into an :class:`IdentityData`. Large arrays may be
read-only ``np.memmap`` views of the identity's cache so a cast of 100 identities × 1000
frames opens in seconds; images are decoded lazily (or memory-mapped from the cache).
"""
from __future__ import annotations

import hashlib
import json
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import InputError
from ..files import atomic_path, write_json
from .expressions import read_expression
from .mesh_io import read_obj_vertices

CACHE_VERSION = 2

#: a split of a sequence's frames: the training frames (first 90 %), the held-out ones, or both
Split = Literal["train", "test", "all"]
SPLITS: tuple[str, ...] = typing.get_args(Split)


def split_mask(is_train: np.ndarray, split: Split) -> np.ndarray:
    """[F] bool mask of the frames of ``split`` given the training flags is_train [F];
    InputError listing the splits for any other name."""
    if split not in SPLITS:
        raise InputError(None, f"unknown split {split!r} (choose {', '.join(SPLITS)})")
    if split == "all":
        return np.ones(is_train.shape, bool)
    return is_train if split == "train" else ~is_train


@dataclass
class IdentityData:
    """A tracked monocular sequence of one person.

    Attributes:
        name: identity name (the folder name).
        root: the identity folder.
        source: ``"fastminerf"`` or ``"insta"``.
        width, height: image size in pixels (same for every frame).
        intrinsics: [F, 4] float32 (fx, fy, cx, cy) in pixels, per frame.
        cam_to_head: [F, 4, 4] float32 camera-to-head transform, OpenCV camera axes
            (x right, y down, z forward). Rays are cast in head space, where the meshes live.
        vertices: [F, V, 3] float32 tracked mesh per frame, head space (may be a memmap).
        faces: [T, 3] int32, shared by every frame and by ``canonical``.
        canonical: [V, 3] float32 this identity's neutral mesh.
        expressions: [F, E] float32 expression coefficients per frame.
        expression_names: E names ("" when unknown).
        is_train: [F] bool, True for the training split (first 90 % in our layout).
        image_paths: F image files (RGBA; alpha = head mask).
        images: optional [F, H, W, 4] uint8 (memmap of the image cache) or None.
        seg_paths: F segmentation files (INSTA ids in the red channel) or None each.
        vertex_regions: optional [V] uint8 region ids (see ``face_model.REGIONS``).
        fps: frames per second of the source video.
        face_model: name of the head model the meshes come from.
        expression_basis: optional [E, V, 3] float32 (for driving a mesh from coefficients).
    """

    name: str
    root: Path
    source: str
    width: int
    height: int
    intrinsics: np.ndarray
    cam_to_head: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    canonical: np.ndarray
    expressions: np.ndarray
    expression_names: list[str]
    is_train: np.ndarray
    image_paths: list[Path]
    images: np.ndarray | None = None
    seg_paths: list[Path | None] = field(default_factory=list)
    vertex_regions: np.ndarray | None = None
    fps: float = 25.0
    face_model: str = "unknown"
    expression_basis: np.ndarray | None = None

    @property
    def n_frames(self) -> int:
        return int(self.vertices.shape[0])

    @property
    def n_vertices(self) -> int:
        return int(self.vertices.shape[1])

    @property
    def n_expressions(self) -> int:
        return int(self.expressions.shape[1])

    def image(self, i: int) -> np.ndarray:
        """[H, W, 4] uint8 RGBA of frame i (from the cache when present)."""
        if self.images is not None:
            return np.asarray(self.images[i])
        return read_rgba(self.image_paths[i], self.width, self.height)

    def split_indices(self, split: Split) -> np.ndarray:
        """Frame indices of ``"train"``, ``"test"`` or ``"all"``."""
        return np.flatnonzero(split_mask(self.is_train, split))

    def validate(self) -> None:
        """Shape and finiteness checks; raises :class:`InputError` naming the folder."""
        F, V = self.n_frames, self.n_vertices
        expect = {
            "intrinsics": (self.intrinsics, (F, 4)),
            "cam_to_head": (self.cam_to_head, (F, 4, 4)),
            "canonical": (self.canonical, (V, 3)),
            "is_train": (self.is_train, (F,)),
        }
        for key, (arr, shape) in expect.items():
            if arr.shape != shape:
                raise InputError(self.root, f"{key} has shape {arr.shape}, expected {shape}")
        if self.expressions.ndim != 2 or self.expressions.shape[0] != F:
            raise InputError(self.root, f"expressions have shape {self.expressions.shape}, expected ({F}, E)")
        if len(self.image_paths) != F:
            raise InputError(self.root, f"{len(self.image_paths)} images for {F} frames")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3 or self.faces.max(initial=0) >= V or self.faces.min(initial=0) < 0:
            raise InputError(self.root, f"faces {self.faces.shape} do not index {V} vertices")
        for key in ("intrinsics", "cam_to_head", "canonical", "expressions"):
            if not np.isfinite(getattr(self, key)).all():
                raise InputError(self.root, f"{key} contain NaN or inf")
        if F == 0:
            raise InputError(self.root, "no frames")
        if self.images is not None and self.images.shape != (F, self.height, self.width, 4):
            raise InputError(self.root, f"image cache has shape {self.images.shape}, expected ({F}, {self.height}, {self.width}, 4)")


def read_rgba(path: Path, width: int | None = None, height: int | None = None) -> np.ndarray:
    """Decode an image to [H, W, 4] uint8 (alpha = 255 when the file has none)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "image file not found")
    try:
        with Image.open(path) as im:
            im = im.convert("RGBA")
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise InputError(path, f"unreadable image ({e})") from None
    if width is not None and arr.shape[:2] != (height, width):
        raise InputError(path, f"image is {arr.shape[1]}x{arr.shape[0]}, expected {width}x{height}")
    return arr


def read_gray(path: Path) -> np.ndarray:
    """Decode a mask to [H, W] uint8 (the red channel, as INSTA's seg_mask files)."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, FileNotFoundError) as e:
        raise InputError(path, f"unreadable mask ({e})") from None
    return arr[..., 0] if arr.ndim == 3 else arr


def fingerprint(*files: Path, frame_files=(), version: int = CACHE_VERSION) -> str:
    """sha1 over the contents of ``files`` (missing files hash as empty) and the size and
    mtime of each of ``frame_files`` (the per-frame images, meshes and expression files the
    cache holds: an edited or damaged frame file invalidates the cache, at one stat a file)."""
    h = hashlib.sha1(f"v{version}".encode())
    for f in files:
        h.update(str(Path(f).name).encode())
        if Path(f).is_file():
            h.update(Path(f).read_bytes())
    for f in frame_files:
        try:
            st = os.stat(f)
            h.update(f"{Path(f).name}:{st.st_size}:{st.st_mtime_ns};".encode())
        except OSError:
            h.update(f"{Path(f).name}:missing;".encode())
    return h.hexdigest()


def load_json(path: Path) -> dict:
    """Parse a JSON file with a one-line error naming it."""
    if not path.is_file():
        raise InputError(path, "file not found")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"invalid JSON ({e})") from None
    if not isinstance(doc, dict):
        raise InputError(path, f"the top level must be an object, got {type(doc).__name__}")
    return doc


def number(d: dict, key: str, path: Path, *, what: str = "", integer: bool = False, positive: bool = False):
    """d[key] as a finite float (or int) with a one-line error naming the file and the key."""
    v = require(d, key, path)
    name = f"{what}{key}"
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not float(v).is_integer()):
        raise InputError(path, f"{name} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if not np.isfinite(v):
        raise InputError(path, f"{name} must be finite, got {v!r}")
    if positive and v <= 0:
        raise InputError(path, f"{name} must be > 0, got {v!r}")
    return int(v) if integer else float(v)


def listed(d: dict, key: str, path: Path, item_type: type | None = None) -> list:
    """d[key] as a list (of ``item_type`` when given), with a one-line error naming the file."""
    v = require(d, key, path)
    if not isinstance(v, list) or (item_type and not all(isinstance(x, item_type) for x in v)):
        kind = f"a list of {item_type.__name__}" if item_type else "a list"
        raise InputError(path, f"{key} must be {kind}")
    return v


def relative_path(d: dict, key: str, path: Path, what: str) -> str:
    """d[key] as a non-empty string path (one-line error naming the file otherwise)."""
    v = require(d, key, path)
    if not isinstance(v, str) or not v:
        raise InputError(path, f"{what} {key} must be a path string, got {v!r}")
    return v


def require(d: dict, key: str, path: Path):
    """d[key] or an InputError naming the file and the missing key."""
    if key not in d:
        raise InputError(path, f"missing key {key!r}")
    return d[key]


def matrix44(value, path: Path, what: str) -> np.ndarray:
    """A 4×4 float32 matrix from JSON (3×4 is padded), with shape/finite checks."""
    try:
        m = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError(path, f"{what} must be a 4x4 (or 3x4) matrix of numbers") from None
    if m.shape == (3, 4):
        m = np.concatenate([m, [[0, 0, 0, 1]]], 0)
    if m.shape != (4, 4):
        raise InputError(path, f"{what} has shape {m.shape}, expected 4x4")
    if not np.isfinite(m).all():
        raise InputError(path, f"{what} contains NaN or inf")
    if abs(np.linalg.det(m)) < 1e-12:
        raise InputError(path, f"{what} is singular (not an invertible rigid transform)")
    return m


def load_cache(cache: Path, fp: str):
    """(vertices [F,V,3], expressions [F,E], images [F,H,W,4]) as read-only memmaps when
    ``cache/meta.json`` carries fingerprint ``fp``; otherwise None."""
    meta_p = cache / "meta.json"
    try:
        if json.loads(meta_p.read_text()).get("fingerprint") != fp:
            return None
        return tuple(np.load(cache / f"{k}.npy", mmap_mode="r") for k in ("vertices", "expressions", "images"))
    except (OSError, ValueError, json.JSONDecodeError):
        return None


def cached_vertices(cache: Path, transforms_fp: tuple[str, str], shape: tuple) -> np.ndarray | None:
    """The cache's vertices when they were built from the same transforms files (meta key
    ``transforms``) and have ``shape``: the source of truth of a cast written without mesh
    files, kept when only the images or expression files changed. Otherwise None.
    ``transforms_fp`` is a pair: (this version's, version 1's fingerprint of the transforms
    files), as version-1 caches stored the latter as ``fingerprint``."""
    try:
        meta = json.loads((cache / "meta.json").read_text())
        if meta.get("transforms") != transforms_fp[0] and meta.get("fingerprint") != transforms_fp[1]:
            return None
        v = np.load(cache / "vertices.npy", mmap_mode="r")
        return np.array(v) if v.shape == shape else None
    except (OSError, ValueError, json.JSONDecodeError):
        return None


def build_cache(cache: Path, fp: str, *, mesh_paths, exp_paths, read_image, n_vertices: int, width: int, height: int,
                vertices: np.ndarray | None = None, transforms_fp: str | None = None):
    """Read every per-frame file into arrays and store them in ``cache/`` (temp + rename).

    Args:
        mesh_paths, exp_paths: F files each. read_image: i -> [H, W, 4] uint8.
        n_vertices: V of the canonical mesh (a frame mesh with another count is an error).
        vertices: [F, V, 3] to use instead of reading ``mesh_paths`` (see :func:`cached_vertices`).
        transforms_fp: fingerprint of the transforms files alone, stored for :func:`cached_vertices`.
    Returns:
        (vertices [F,V,3] float32, expressions [F,E] float32, images [F,H,W,4] uint8).
        When the folder is read-only the arrays stay in memory only.
    """
    F = len(exp_paths)
    verts = np.empty((F, n_vertices, 3), np.float32) if vertices is None else np.asarray(vertices, np.float32)
    imgs = np.empty((F, height, width, 4), np.uint8)
    exps = None
    for i in range(F):
        if vertices is None:
            v = read_obj_vertices(mesh_paths[i])
            if v.shape[0] != n_vertices:
                raise InputError(mesh_paths[i], f"mesh has {v.shape[0]} vertices, the canonical mesh has {n_vertices} (different topology)")
            verts[i] = v
        e = read_expression(exp_paths[i])
        if exps is None:
            exps = np.empty((F, e.shape[0]), np.float32)
        if e.shape[0] != exps.shape[1]:
            raise InputError(exp_paths[i], f"{e.shape[0]} expression coefficients, other frames have {exps.shape[1]}")
        exps[i] = e
        imgs[i] = read_image(i)
    try:
        cache.mkdir(parents=True, exist_ok=True)
        for name, arr in (("vertices", verts), ("expressions", exps), ("images", imgs)):
            with atomic_path(cache / f"{name}.npy") as tmp:
                np.save(tmp, arr)
        write_json(cache / "meta.json", {"fingerprint": fp, "transforms": transforms_fp, "n_frames": F}, indent=None)
    except OSError:
        pass  # read-only dataset: keep the arrays in memory
    return verts, exps, imgs
