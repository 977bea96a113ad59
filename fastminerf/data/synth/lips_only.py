"""Lips-only casts: the synthetic cast re-written with FLAME-like tracked meshes.

Our synthetic head has a mouth pocket (inner lips, teeth, palate, tongue) hung from the
mouth line; FLAME meshes and most trackers' meshes have only the lip seam. This module
re-writes a synthetic identity in INSTA's layout (``fastminerf.data.insta``) with every
vertex of region MOUTH_INTERIOR (and every triangle touching one) removed, so the harder
case — an open mouth whose interior has no mesh — is in our tests and benchmarks, and the
INSTA reader is exercised. Images, seg masks, cameras and expressions are unchanged; the
``transfer/`` ground truth is copied as is (it is read for its images and seg masks).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from ..layout import read_identity
from ..mesh_io import write_obj
from ..regions import Region


def pocket_free(faces: np.ndarray, vertex_regions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the mouth pocket: (keep [V'] vertex ids kept, faces [T', 3] int32 re-indexed)."""
    pocket = vertex_regions == int(Region.MOUTH_INTERIOR)
    tris = faces[~pocket[faces].any(1)]
    keep = np.unique(tris)
    remap = np.full(len(vertex_regions), -1, np.int64)
    remap[keep] = np.arange(keep.size)
    return keep, remap[tris].astype(np.int32)


def write_lips_only_identity(src: str | Path, dst: str | Path) -> Path:
    """Re-write our-layout identity ``src`` (with ``vertex_regions.npy``) as an INSTA actor
    folder ``dst`` without the mouth pocket. Returns ``dst``."""
    from PIL import Image

    d, dst = read_identity(src), Path(dst)
    if d.vertex_regions is None:
        raise ValueError(f"{src}: no vertex_regions.npy (needed to find the mouth pocket)")
    keep, faces = pocket_free(d.faces, d.vertex_regions)
    for sub in ("images", "seg_mask", "meshes", "flame/exp"):
        (dst / sub).mkdir(parents=True, exist_ok=True)
    write_obj(dst / "canonical.obj", d.canonical[keep], faces)
    np.save(dst / "vertex_regions.npy", d.vertex_regions[keep])
    K = d.intrinsics[0]
    top = {"w": d.width, "h": d.height, "fl_x": float(K[0]), "fl_y": float(K[1]), "cx": float(K[2]), "cy": float(K[3]),
           "fps": d.fps}
    split: dict[bool, list] = {True: [], False: []}
    for i in range(d.n_frames):
        n = f"{i:05d}"
        Image.fromarray(d.image(i), "RGBA").save(dst / f"images/{n}.png", compress_level=1)
        frame = {"file_path": f"images/{n}.png", "transform_matrix": np.asarray(d.cam_to_head[i]).tolist(),
                 "mesh_path": f"meshes/{n}.obj", "exp_path": f"flame/exp/{n}.txt"}
        if d.seg_paths and d.seg_paths[i] is not None:
            shutil.copyfile(d.seg_paths[i], dst / f"seg_mask/{n}.png")
            frame["seg_mask_path"] = f"seg_mask/{n}.png"
        write_obj(dst / f"meshes/{n}.obj", np.asarray(d.vertices[i])[keep])
        np.savetxt(dst / f"flame/exp/{n}.txt", np.asarray(d.expressions[i]))
        split[bool(d.is_train[i])].append(frame)
    (dst / "transforms_train.json").write_text(json.dumps({**top, "frames": split[True]}))
    (dst / "transforms_test.json").write_text(json.dumps({**top, "frames": split[False]}))
    if (Path(src) / "transfer").is_dir():
        shutil.copytree(Path(src) / "transfer", dst / "transfer")
    return dst


def lips_only_cast(cast: str | Path) -> list[Path]:
    """Re-write every identity of a synthetic cast folder in place as a lips-only INSTA actor."""
    cast, out = Path(cast), []
    for src in sorted(p for p in cast.iterdir() if (p / "vertex_regions.npy").is_file()):
        tmp = src.with_name(f".{src.name}.lips-only")
        shutil.rmtree(tmp, ignore_errors=True)
        write_lips_only_identity(src, tmp)
        shutil.rmtree(src)
        tmp.rename(src)
        out.append(src)
    return out
