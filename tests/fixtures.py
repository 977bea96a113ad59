"""Tiny datasets built inside tests (no synthetic-head dependency): an icosphere "head"."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fastminerf.data.layout import IdentityWriter
from fastminerf.data.mesh_io import write_obj


def sphere(subdivisions: int = 2, radius: float = 0.1):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return m.vertices.astype(np.float32), m.faces.astype(np.int32)


def camera(distance: float = 0.5):
    """c2w of a camera at (0, 0, distance) looking along -z (OpenCV axes)."""
    c2w = np.eye(4, dtype=np.float32)
    c2w[:3, :3] = np.diag([1, -1, -1])
    c2w[2, 3] = distance
    return c2w


def make_identity(root: Path, name: str = "a", n_frames: int = 6, size: int = 32, subdivisions: int = 2,
                  n_exp: int = 4, seed: int = 0, colour=(200, 120, 90), basis: bool = False, obj_files: bool = True) -> Path:
    """Write a small identity in our layout: a sphere whose radius breathes with the
    'expression', rendered as a flat disc of ``colour`` (alpha = disc). ``basis`` also writes
    the (exact, additive) expression basis: mesh = v + e0 · 0.2 v."""
    rng = np.random.default_rng(seed)
    v, f = sphere(subdivisions)
    fx = size * 1.5
    K = (fx, fx, size / 2, size / 2)
    yy, xx = np.mgrid[:size, :size]
    with IdentityWriter(root / name, n_frames=n_frames, width=size, height=size, intrinsics=K, faces=f,
                        canonical=v, expression_names=[f"e{i}" for i in range(n_exp)],
                        expression_basis=_breathing_basis(v, n_exp) if basis else None, write_obj=obj_files) as w:
        for i in range(n_frames):
            e = rng.normal(size=n_exp).astype(np.float32) * 0.1
            s = 1 + 0.2 * e[0]
            r_px = fx * 0.1 * s / 0.5
            disc = (xx + 0.5 - size / 2) ** 2 + (yy + 0.5 - size / 2) ** 2 < r_px**2
            rgba = np.zeros((size, size, 4), np.uint8)
            rgba[disc] = (*colour, 255)
            w.add(i, rgba, camera(), np.eye(4), v * s, e)
    return root / name


def _breathing_basis(v: np.ndarray, n_exp: int) -> np.ndarray:
    b = np.zeros((n_exp, *v.shape), np.float32)
    b[0] = 0.2 * v
    return b


def make_insta_identity(root: Path, name: str = "actor", n_train: int = 4, n_test: int = 2, size: int = 32,
                        c2w: np.ndarray | None = None) -> Path:
    """Write a small actor in INSTA's layout (RGBA images, meshes/, flame/exp/, seg_mask/)."""
    from PIL import Image

    d = root / name
    for sub in ("images", "meshes", "flame/exp", "seg_mask"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    v, f = sphere(1)
    write_obj(d / "canonical.obj", v, f)
    c2w = camera() if c2w is None else c2w
    frames = []
    for i in range(n_train + n_test):
        n = f"{i:05d}"
        img = np.zeros((size, size, 4), np.uint8)
        img[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = (50, 100, 150, 255)
        Image.fromarray(img, "RGBA").save(d / f"images/{n}.png")
        Image.fromarray(np.where(img[..., 3] > 0, 250, 0).astype(np.uint8)).save(d / f"seg_mask/{n}.png")
        write_obj(d / f"meshes/{n}.obj", v * (1 + 0.01 * i), f)
        np.savetxt(d / f"flame/exp/{n}.txt", np.arange(100, dtype=np.float32) * 0.01 * i)
        frames.append({"file_path": f"images/{n}.png", "transform_matrix": c2w.tolist(), "mesh_path": f"meshes/{n}.obj",
                       "exp_path": f"flame/exp/{n}.txt", "seg_mask_path": f"seg_mask/{n}.png", "depth_path": f"depth/{n}.png"})
    top = {"w": size, "h": size, "fl_x": size * 1.5, "fl_y": size * 1.5, "cx": size / 2, "cy": size / 2,
           "camera_angle_x": 1.0, "camera_angle_y": 1.0, "integer_depth_scale": 0.001}
    (d / "transforms_train.json").write_text(json.dumps({**top, "frames": frames[:n_train]}))
    (d / "transforms_test.json").write_text(json.dumps({**top, "frames": frames[n_train:]}))
    return d
