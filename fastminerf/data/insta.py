"""Reader for INSTA's per-actor layout (what metrical-tracker + INSTA's scripts write).

::

    <actor>/canonical.obj
    <actor>/transforms_train.json, transforms_test.json (transforms_val.json is ignored)
    <actor>/images/*.png        RGBA, matted
    <actor>/seg_mask/*.png      face-parsing ids in the red channel
    <actor>/meshes/*.obj        tracked mesh per frame, same topology as canonical.obj
    <actor>/flame/exp/*.txt     expression coefficients per frame

``transform_matrix`` is camera-to-world in OpenCV axes and the tracked meshes are already in
world space, so head space = world space here (head pose = identity). Frames are ordered
by ``mesh_path``; those listed in transforms_test.json form the held-out split. Parsed
arrays are cached in ``<actor>/fastminerf_cache/`` (skipped when the folder is read-only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from .expressions import check_finite
from .identity import (
    IdentityData,
    build_cache,
    fingerprint,
    load_cache,
    load_json,
    matrix44,
    read_gray,
    read_rgba,
    require,
)
from .mesh_io import read_obj

TRAIN_JSON, TEST_JSON = "transforms_train.json", "transforms_test.json"


def _resolve(root: Path, rel: str, default_ext: str = ".png") -> Path:
    p = root / rel
    if not p.suffix and not p.exists() and (p.with_suffix(default_ext)).exists():
        p = p.with_suffix(default_ext)
    return p


def read_insta_identity(root: str | Path) -> IdentityData:
    """Read one INSTA actor folder into an :class:`IdentityData` (head pose = identity)."""
    root = Path(root)
    train_p, test_p = root / TRAIN_JSON, root / TEST_JSON
    top = load_json(train_p)
    test = load_json(test_p) if test_p.is_file() else {"frames": []}
    frames = [(f, True, train_p) for f in require(top, "frames", train_p)] + [
        (f, False, test_p) for f in test.get("frames", [])
    ]
    if not frames:
        raise InputError(train_p, "no frames")
    for f, _, src in frames:
        for k in ("file_path", "transform_matrix", "mesh_path", "exp_path"):
            require(f, k, src)
    frames.sort(key=lambda t: t[0]["mesh_path"])
    F = len(frames)
    W, H = int(require(top, "w", train_p)), int(require(top, "h", train_p))
    K = np.array([[float(require(top, k, train_p)) for k in ("fl_x", "fl_y", "cx", "cy")]] * F, np.float32)
    check_finite(K, train_p, "intrinsics")
    c2h = np.stack([matrix44(f["transform_matrix"], src, f"frame {i} transform_matrix") for i, (f, _, src) in enumerate(frames)]).astype(np.float32)
    image_paths = [_resolve(root, f["file_path"]) for f, _, _ in frames]
    seg_paths = [_resolve(root, f["seg_mask_path"]) if f.get("seg_mask_path") else None for f, _, _ in frames]
    for p in image_paths:
        if not p.is_file():
            raise InputError(p, "image file not found")
    canonical, faces = read_obj(root / "canonical.obj")

    def read_image(i: int) -> np.ndarray:
        rgba = read_rgba(image_paths[i], W, H)
        if (rgba[..., 3] == 255).all() and seg_paths[i] is not None and seg_paths[i].is_file():
            seg = read_gray(seg_paths[i])  # RGB-only image: the head mask comes from the parsing
            rgba[..., 3] = np.where((seg > 0) & (seg != 90), 255, 0)
        return rgba

    fp = fingerprint(train_p, test_p, frame_files=[p for f, _, _ in frames for p in (
        _resolve(root, f["file_path"]), root / f["mesh_path"], root / f["exp_path"])])
    cache = root / "fastminerf_cache"
    arrays = load_cache(cache, fp) or build_cache(
        cache, fp,
        mesh_paths=[root / f["mesh_path"] for f, _, _ in frames],
        exp_paths=[root / f["exp_path"] for f, _, _ in frames],
        read_image=read_image, n_vertices=canonical.shape[0], width=W, height=H,
    )
    vertices, expressions, images = arrays
    if vertices.shape != (F, canonical.shape[0], 3):
        raise InputError(cache, f"cached vertices have shape {vertices.shape}, expected ({F}, {canonical.shape[0]}, 3)")
    data = IdentityData(
        name=root.name, root=root, source="insta", width=W, height=H, intrinsics=K,
        cam_to_head=c2h, vertices=vertices, faces=faces, canonical=canonical,
        expressions=expressions, expression_names=[""] * expressions.shape[1],
        is_train=np.array([tr for _, tr, _ in frames]), image_paths=image_paths, images=images,
        seg_paths=seg_paths, fps=float(top.get("fps", 25.0)), face_model="flame",
    )
    data.validate()
    return data
