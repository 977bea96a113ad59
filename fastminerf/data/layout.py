"""fastminerf's on-disk layout for one identity: write it, read it.

One folder per identity, close to INSTA's layout (field-by-field description in README.md,
"Data layout")::

    <identity>/
      transforms_train.json     intrinsics + per-frame camera, head pose and paths (first 90 %)
      transforms_test.json      the same for the held-out last 10 %
      canonical.obj             this identity's neutral mesh (defines the topology)
      images/00000.png          RGBA, alpha = head mask
      seg_mask/00000.png        optional, INSTA region ids
      meshes/00000.obj          per-frame tracked mesh (head space; optional when the cache exists)
      expressions/00000.txt     expression coefficients of the frame (one line)
      vertex_regions.npy        optional [V] uint8 region id per vertex
      expression_basis.npy      optional [E, V, 3] float32 blendshapes (drive a mesh from sliders)
      cache/                    compact arrays, rebuilt from the files above when stale:
        vertices.npy [F, V, 3] float32, expressions.npy [F, E] float32,
        images.npy [F, H, W, 4] uint8, meta.json (fingerprint of the two transforms files and
        the size + mtime of each per-frame file)

Writing goes to a hidden temporary folder that is renamed into place at the end, so an
interrupted writer never leaves a half-written identity behind.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputError
from ..files import commit_dir, temp_dir
from .expressions import check_finite
from .identity import (
    IdentityData,
    build_cache,
    cached_vertices,
    fingerprint,
    listed,
    load_cache,
    load_json,
    matrix44,
    number,
    read_gray,
    read_rgba,
    relative_path,
    require,
)
from .mesh_io import read_obj, write_obj

FORMAT = "fastminerf-1"
TRAIN_JSON, TEST_JSON = "transforms_train.json", "transforms_test.json"


def _r(x, nd: int = 7):
    """Round floats (recursively) so JSON output is short and byte-stable."""
    if isinstance(x, (list, tuple)):
        return [_r(v, nd) for v in x]
    return round(float(x), nd)


def train_count(n_frames: int, train_fraction: float = 0.9) -> int:
    """How many leading frames :meth:`IdentityWriter.finish` puts in the training split:
    ceil(train_fraction·F), keeping at least one held-out frame when F > 1; 0 when
    train_fraction ≤ 0 (a held-out-only sequence, e.g. cross-reenactment ground truth)."""
    if train_fraction <= 0:
        return 0
    n_train = max(1, min(n_frames, int(math.ceil(train_fraction * n_frames - 1e-9))))
    if n_frames > 1 and n_train == n_frames:
        n_train = n_frames - 1
    return n_train


class IdentityWriter:
    """Stream the frames of one identity into our layout.

    Example::

        with IdentityWriter("data/alice", n_frames=F, width=W, height=H,
                            intrinsics=(fx, fy, cx, cy), faces=faces, canonical=neutral,
                            expression_names=names) as w:
            for i in range(F):
                w.add(i, rgba, c2w, head_pose, vertices, expression)
        # the folder exists only now (w.finish() ran on exit)

    Args:
        out_dir: the identity folder to create (its name is the identity name).
        n_frames: F, number of frames that will be added.
        width, height: image size.
        intrinsics: (fx, fy, cx, cy) in pixels, shared by all frames.
        faces: [T, 3] int triangles. canonical: [V, 3] neutral mesh of this identity.
        expression_names: E names of the expression coefficients.
        fps: frame rate. face_model: name of the head model.
        vertex_regions: optional [V] uint8. expression_basis: optional [E, V, 3].
        write_obj: also write meshes/NNNNN.obj per frame (INSTA tools expect them).
        overwrite: replace an existing folder (otherwise that is an error).
        extra: extra top-level JSON keys (e.g. provenance of a synthetic cast).
    """

    def __init__(
        self,
        out_dir: str | Path,
        *,
        n_frames: int,
        width: int,
        height: int,
        intrinsics: tuple[float, float, float, float],
        faces: np.ndarray,
        canonical: np.ndarray,
        expression_names: list[str],
        fps: float = 25.0,
        face_model: str = "unknown",
        vertex_regions: np.ndarray | None = None,
        expression_basis: np.ndarray | None = None,
        write_obj: bool = True,
        overwrite: bool = False,
        extra: dict | None = None,
    ):
        self.out = Path(out_dir)
        if self.out.exists() and not overwrite:
            raise InputError(self.out, "already exists (pass overwrite=True / --overwrite to replace it)")
        self.n, self.W, self.H = int(n_frames), int(width), int(height)
        self.intrinsics = tuple(float(v) for v in intrinsics)
        self.faces = np.asarray(faces, np.int32)
        self.canonical = np.asarray(canonical, np.float32)
        V, E = self.canonical.shape[0], len(expression_names)
        self.meta = dict(fps=float(fps), face_model=face_model, expression_names=list(expression_names), extra=extra or {})
        self.write_obj, self.overwrite = write_obj, overwrite
        self.tmp = temp_dir(self.out)
        for sub in ("images", "expressions", "cache") + (("meshes",) if write_obj else ()):
            (self.tmp / sub).mkdir()
        c = self.tmp / "cache"
        self.images = np.lib.format.open_memmap(c / "images.npy", "w+", np.uint8, (self.n, self.H, self.W, 4))
        self.vertices = np.lib.format.open_memmap(c / "vertices.npy", "w+", np.float32, (self.n, V, 3))
        self.expressions = np.lib.format.open_memmap(c / "expressions.npy", "w+", np.float32, (self.n, E))
        self.frames: list[dict | None] = [None] * self.n
        if vertex_regions is not None:
            np.save(self.tmp / "vertex_regions.npy", np.asarray(vertex_regions, np.uint8))
        if expression_basis is not None:
            np.save(self.tmp / "expression_basis.npy", np.asarray(expression_basis, np.float32))

    def add(
        self,
        i: int,
        rgba: np.ndarray,
        c2w: np.ndarray,
        head_pose: np.ndarray,
        vertices: np.ndarray,
        expression: np.ndarray,
        seg: np.ndarray | None = None,
        time: float | None = None,
    ) -> None:
        """Add frame i: rgba [H, W, 4] uint8, c2w [4, 4] camera-to-world (OpenCV axes),
        head_pose [4, 4] head-to-world, vertices [V, 3] head space, expression [E],
        seg optional [H, W] uint8 region ids, time in seconds (default i / fps)."""
        rgba = np.asarray(rgba, np.uint8)
        if rgba.shape != (self.H, self.W, 4):
            raise ValueError(f"frame {i}: rgba has shape {rgba.shape}, expected {(self.H, self.W, 4)}")
        name = f"{i:05d}"
        Image.fromarray(rgba, "RGBA").save(self.tmp / "images" / f"{name}.png", compress_level=1)
        self.images[i] = rgba
        self.vertices[i] = vertices
        self.expressions[i] = expression
        np.savetxt(self.tmp / "expressions" / f"{name}.txt", np.asarray(expression, np.float64)[None], fmt="%.6f")
        frame = {
            "frame_index": i,
            "time": _r(i / self.meta["fps"] if time is None else time, 5),
            "file_path": f"images/{name}.png",
            "transform_matrix": _r(np.asarray(c2w).tolist()),
            "head_pose": _r(np.asarray(head_pose).tolist()),
            "exp_path": f"expressions/{name}.txt",
        }
        if self.write_obj:
            write_obj(self.tmp / "meshes" / f"{name}.obj", vertices, self.faces)
            frame["mesh_path"] = f"meshes/{name}.obj"
        if seg is not None:
            (self.tmp / "seg_mask").mkdir(exist_ok=True)
            Image.fromarray(np.asarray(seg, np.uint8), "L").save(self.tmp / "seg_mask" / f"{name}.png", compress_level=1)
            frame["seg_mask_path"] = f"seg_mask/{name}.png"
        self.frames[i] = frame

    def finish(self, train_fraction: float = 0.9) -> Path:
        """Write the JSON files and the cache fingerprint, then move the folder into place.

        The first ceil(train_fraction·F) frames form the training split (at least one frame
        is held out when F > 1); train_fraction = 0 writes a held-out-only sequence.
        """
        missing = [i for i, f in enumerate(self.frames) if f is None]
        if missing:
            raise ValueError(f"{self.out}: frames never added: {missing[:5]}...")
        n_train = train_count(self.n, train_fraction)
        fx, fy, cx, cy = self.intrinsics
        top = {
            "format": FORMAT,
            "identity": self.out.name,
            "w": self.W, "h": self.H,
            "fl_x": _r(fx), "fl_y": _r(fy), "cx": _r(cx), "cy": _r(cy),
            "camera_angle_x": _r(2 * math.atan(self.W / (2 * fx))),
            "camera_angle_y": _r(2 * math.atan(self.H / (2 * fy))),
            "fps": self.meta["fps"],
            "face_model": self.meta["face_model"],
            "expression_names": self.meta["expression_names"],
            "canonical_mesh": "canonical.obj",
            **self.meta["extra"],
        }
        for fname, frames in ((TRAIN_JSON, self.frames[:n_train]), (TEST_JSON, self.frames[n_train:])):
            (self.tmp / fname).write_text(json.dumps({**top, "frames": frames}, indent=1))
        write_obj(self.tmp / "canonical.obj", self.canonical, self.faces)
        for arr in (self.images, self.vertices, self.expressions):
            arr.flush()
        del self.images, self.vertices, self.expressions
        _write_cache_meta(self.tmp, self.n)
        return commit_dir(self.tmp, self.out)  # replaces an existing folder only with overwrite=True

    def abort(self) -> None:
        """Remove the temporary folder (nothing is left behind)."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> IdentityWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.finish()
        else:
            self.abort()


def _write_cache_meta(root: Path, n_frames: int) -> None:
    frames = [f for name in (TRAIN_JSON, TEST_JSON) for f in json.loads((root / name).read_text())["frames"]]
    meta = {"fingerprint": identity_fingerprint(root, frames), "transforms": fingerprint(root / TRAIN_JSON, root / TEST_JSON),
            "n_frames": n_frames}
    (root / "cache" / "meta.json").write_text(json.dumps(meta))


def identity_fingerprint(root: Path, frames: list[dict]) -> str:
    """The cache fingerprint of an identity folder: its two transforms files' contents and
    the size + mtime of every per-frame file the cache holds (images, expressions, meshes)."""
    keys = ("file_path", "exp_path", "mesh_path")
    return fingerprint(root / TRAIN_JSON, root / TEST_JSON,
                       frame_files=[root / f[k] for f in frames for k in keys if isinstance(f.get(k), str)])


def is_fastminerf_identity(root: Path) -> bool:
    p = Path(root) / TRAIN_JSON
    if not p.is_file():
        return False
    try:
        doc = json.loads(p.read_text())
        return isinstance(doc, dict) and str(doc.get("format", "")).startswith("fastminerf")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False


def read_identity(root: str | Path) -> IdentityData:
    """Read one identity folder in our layout (see module docstring).

    The cache is used when its fingerprint matches the transforms files; otherwise it is
    rebuilt from the per-frame files (meshes/*.obj, expressions/*.txt, images/*.png).
    Raises InputError naming the file for every problem found.
    """
    root = Path(root)
    train_p, test_p = root / TRAIN_JSON, root / TEST_JSON
    top = load_json(train_p)
    test = load_json(test_p) if test_p.is_file() else {"frames": []}
    frames = [(f, True) for f in listed(top, "frames", train_p, dict)]
    frames += [(f, False) for f in (listed(test, "frames", test_p, dict) if "frames" in test else [])]
    if not frames:
        raise InputError(train_p, "no frames")
    index = [number(f, "frame_index", train_p if tr else test_p, integer=True) for f, tr in frames]
    frames = [frames[i] for i in np.argsort(index, kind="stable")]
    F = len(frames)
    if sorted(index) != list(range(F)):
        raise InputError(train_p, "frame_index values must be 0..F-1 across the train and test files")
    W, H = (number(top, k, train_p, integer=True, positive=True) for k in ("w", "h"))
    K = np.array([[number(top, k, train_p, positive=k.startswith("fl")) for k in ("fl_x", "fl_y", "cx", "cy")]] * F, np.float32)
    check_finite(K, train_p, "intrinsics")
    c2h = np.empty((F, 4, 4), np.float32)
    for i, (f, tr) in enumerate(frames):
        src = train_p if tr else test_p
        c2w = matrix44(require(f, "transform_matrix", src), src, f"frame {i} transform_matrix")
        pose = matrix44(f.get("head_pose", np.eye(4)), src, f"frame {i} head_pose")
        c2h[i] = np.linalg.solve(pose, c2w)
    image_paths = [root / relative_path(f, "file_path", train_p if tr else test_p, f"frame {i}") for i, (f, tr) in enumerate(frames)]
    for p in image_paths:
        if not p.is_file():
            raise InputError(p, "image file not found")
    seg_paths = [root / f["seg_mask_path"] if "seg_mask_path" in f else None for f, _ in frames]
    canon_path = root / top.get("canonical_mesh", "canonical.obj")
    canonical, faces = read_obj(canon_path)

    names = listed(top, "expression_names", train_p, str) if "expression_names" in top else None
    cache = root / "cache"
    fp = identity_fingerprint(root, [f for f, _ in frames])
    arrays = load_cache(cache, fp)
    if arrays is None:
        tfp = fingerprint(train_p, test_p)
        kept = None
        if any("mesh_path" not in f for f, _ in frames):  # meshes live in the cache only
            kept = cached_vertices(cache, (tfp, fingerprint(train_p, test_p, version=1)), (F, canonical.shape[0], 3))
            if kept is None:
                i = next(i for i, (f, _) in enumerate(frames) if "mesh_path" not in f)
                raise InputError(train_p, f"frame {i} has no mesh_path and the cache is missing or stale")
        arrays = build_cache(
            cache, fp, vertices=kept, transforms_fp=tfp,
            mesh_paths=None if kept is not None else [root / f["mesh_path"] for f, _ in frames],
            exp_paths=[root / require(f, "exp_path", train_p) for f, _ in frames],
            read_image=lambda i: read_rgba(image_paths[i], W, H),
            n_vertices=canonical.shape[0], width=W, height=H,
        )
    vertices, expressions, images = arrays
    if vertices.shape != (F, canonical.shape[0], 3):
        raise InputError(cache / "vertices.npy", f"shape {vertices.shape} does not match {F} frames of the canonical mesh ({canonical.shape[0]} vertices)")
    names = names if names is not None else [""] * expressions.shape[1]
    if len(names) != expressions.shape[1]:
        raise InputError(train_p, f"{len(names)} expression_names for {expressions.shape[1]} coefficients")
    regions = _optional_npy(root / "vertex_regions.npy", (canonical.shape[0],))
    basis = _optional_npy(root / "expression_basis.npy", (len(names), canonical.shape[0], 3))
    data = IdentityData(
        name=root.name, root=root, source="fastminerf", width=W, height=H, intrinsics=K,
        cam_to_head=c2h, vertices=vertices, faces=faces, canonical=canonical,
        expressions=expressions, expression_names=names,
        is_train=np.array([tr for _, tr in frames]), image_paths=image_paths, images=images,
        seg_paths=seg_paths, vertex_regions=regions, fps=float(top.get("fps", 25.0)),
        face_model=str(top.get("face_model", "unknown")), expression_basis=basis,
    )
    data.validate()
    return data


def _optional_npy(path: Path, shape: tuple) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        arr = np.load(path)
    except (OSError, ValueError) as e:
        raise InputError(path, f"unreadable array ({e})") from None
    if arr.shape != shape:
        raise InputError(path, f"shape {arr.shape}, expected {shape}")
    return arr


def read_seg(data: IdentityData, i: int) -> np.ndarray | None:
    """[H, W] uint8 region ids of frame i, or None without a seg_mask file."""
    p = data.seg_paths[i] if data.seg_paths else None
    return None if p is None else read_gray(p)
