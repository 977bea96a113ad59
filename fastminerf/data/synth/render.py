"""CPU renderer for the synthetic cast: an exact pinhole z-buffer in numpy.

Every pixel (x, y) is sampled at its centre, the ray ``((x+0.5-cx)/fx, (y+0.5-cy)/fy, 1)``
in camera coordinates (OpenCV axes), and shows the first triangle that ray hits. Coverage is
decided in screen space for front-facing triangles (pinhole projection preserves lines, so
this is the same as ray casting against a closed, consistently oriented mesh), the nearest
triangle per pixel wins a packed (depth, triangle id) minimum, and the winners' barycentrics
and depth are then recomputed by an exact ray–triangle intersection in float64. No
anti-aliasing: a NeRF trained on these images sees exactly these rays.

Why a z-buffer and not BVH ray casting: see ``benchmarks/results/synth_renderer.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ID_BITS = 21  # triangle ids packed below the quantised depth
_DEPTH_QUANT = 1e-7  # metres per depth unit in the packed key


@dataclass(frozen=True)
class Camera:
    """A pinhole camera. c2w: [4, 4] camera-to-world, OpenCV axes (x right, y down, z forward)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    c2w: np.ndarray

    @property
    def intrinsics(self) -> tuple[float, float, float, float]:
        return (self.fx, self.fy, self.cx, self.cy)

    def pixel_rays(self) -> np.ndarray:
        """[H, W, 3] float64 ray directions in camera coordinates (z = 1) through pixel centres."""
        xs = (np.arange(self.width) + 0.5 - self.cx) / self.fx
        ys = (np.arange(self.height) + 0.5 - self.cy) / self.fy
        d = np.empty((self.height, self.width, 3))
        d[..., 0] = xs[None, :]
        d[..., 1] = ys[:, None]
        d[..., 2] = 1.0
        return d


@dataclass
class Fragments:
    """What each pixel sees.

    Attributes:
        face: [H, W] int32 triangle index, -1 for background.
        bary: [H, W, 3] float64 barycentric coordinates of the hit (0 for background).
        depth: [H, W] float64 camera-space z of the hit (0 for background).
    """

    face: np.ndarray
    bary: np.ndarray
    depth: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """[H, W] bool, True where the mesh covers the pixel."""
        return self.face >= 0


def to_camera(vertices: np.ndarray, head_pose: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """Head-space vertices [V, 3] → camera-space [V, 3] float64 (via head_pose [4, 4], c2w [4, 4])."""
    h2c = np.linalg.solve(np.asarray(c2w, np.float64), np.asarray(head_pose, np.float64))
    v = np.asarray(vertices, np.float64)
    # explicit sums (no BLAS) so the result does not depend on thread counts
    return np.einsum("vj,ij->vi", v, h2c[:3, :3]) + h2c[:3, 3]


def rasterize(v_cam: np.ndarray, faces: np.ndarray, cam: Camera) -> Fragments:
    """Find the first triangle along every pixel-centre ray.

    Args:
        v_cam: [V, 3] float64 vertices in camera coordinates (all in front of the camera).
        faces: [T, 3] int triangles, counter-clockwise seen from outside.
        cam: intrinsics and image size (its c2w is not used here).
    Returns:
        :class:`Fragments` of shape [H, W].
    """
    W, H = cam.width, cam.height
    faces = np.asarray(faces, np.int64)
    if faces.shape[0] >= 1 << _ID_BITS:
        raise ValueError(f"too many triangles for the packed z-buffer: {faces.shape[0]}")
    z = v_cam[:, 2]
    if (z <= 1e-6).any():
        raise ValueError("rasterize: a vertex is at or behind the camera plane")
    proj = np.stack([cam.fx * v_cam[:, 0] / z + cam.cx, cam.fy * v_cam[:, 1] / z + cam.cy], -1)  # [V, 2]
    a3, b3, c3 = (v_cam[faces[:, k]] for k in range(3))
    front = np.einsum("ti,ti->t", np.cross(b3 - a3, c3 - a3), a3) < 0  # normal faces the camera
    a, b, c = (proj[faces[:, k]] for k in range(3))
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    lo = np.floor(np.minimum(np.minimum(a, b), c) - 0.5) + 1  # first pixel index whose centre ≥ min
    hi = np.floor(np.maximum(np.maximum(a, b), c) - 0.5)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, [W - 1, H - 1])
    ext = (hi - lo + 1).clip(0).astype(np.int64)  # [T, 2]
    keep = np.flatnonzero(front & (area != 0) & (ext[:, 0] > 0) & (ext[:, 1] > 0))
    face_out = np.full(H * W, -1, np.int32)
    bary_out = np.zeros((H * W, 3))
    depth_out = np.zeros(H * W)
    if keep.size:
        n = ext[keep, 0] * ext[keep, 1]
        tri = np.repeat(keep, n)  # [P] candidate (triangle, pixel) pairs
        start = np.repeat(np.cumsum(n) - n, n)
        off = np.arange(tri.size) - start
        w = ext[tri, 0]
        px = lo[tri, 0].astype(np.int64) + off % w
        py = lo[tri, 1].astype(np.int64) + off // w
        sx, sy = px + 0.5, py + 0.5
        sgn = np.sign(area[tri])
        A, B, C = a[tri], b[tri], c[tri]
        e_a = ((C[:, 0] - B[:, 0]) * (sy - B[:, 1]) - (C[:, 1] - B[:, 1]) * (sx - B[:, 0])) * sgn
        e_b = ((A[:, 0] - C[:, 0]) * (sy - C[:, 1]) - (A[:, 1] - C[:, 1]) * (sx - C[:, 0])) * sgn
        e_c = ((B[:, 0] - A[:, 0]) * (sy - A[:, 1]) - (B[:, 1] - A[:, 1]) * (sx - A[:, 0])) * sgn
        inside = (e_a >= 0) & (e_b >= 0) & (e_c >= 0)
        tri, px, py = tri[inside], px[inside], py[inside]
        lam = np.stack([e_a[inside], e_b[inside], e_c[inside]], -1) / np.abs(area[tri])[:, None]
        inv_z = (lam / z[faces[tri]]).sum(-1)
        key = (np.round(1.0 / inv_z / _DEPTH_QUANT).astype(np.int64) << _ID_BITS) | tri
        pix = py * W + px
        zbuf = np.full(H * W, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(zbuf, pix, key)
        hit = np.flatnonzero(zbuf != np.iinfo(np.int64).max)
        won = (zbuf[hit] & ((1 << _ID_BITS) - 1)).astype(np.int64)
        bary, t = _intersect(v_cam, faces[won], hit % W, hit // W, cam)
        face_out[hit] = won
        bary_out[hit] = bary
        depth_out[hit] = t
    return Fragments(face_out.reshape(H, W), bary_out.reshape(H, W, 3), depth_out.reshape(H, W))


def _intersect(v_cam: np.ndarray, tris: np.ndarray, px: np.ndarray, py: np.ndarray, cam: Camera):
    """Exact ray–triangle intersection (Möller–Trumbore, float64) for known hits.

    Returns barycentrics [P, 3] (clamped to the triangle) and camera-space depth [P]."""
    d = np.stack([(px + 0.5 - cam.cx) / cam.fx, (py + 0.5 - cam.cy) / cam.fy, np.ones(px.shape)], -1)
    a, b, c = (v_cam[tris[:, k]] for k in range(3))
    e1, e2 = b - a, c - a
    pvec = np.cross(d, e2)
    det = np.einsum("pi,pi->p", e1, pvec)
    tvec = -a
    u = np.einsum("pi,pi->p", tvec, pvec) / det
    qvec = np.cross(tvec, e1)
    v = np.einsum("pi,pi->p", d, qvec) / det
    t = np.einsum("pi,pi->p", e2, qvec) / det
    bary = np.stack([1.0 - u - v, u, v], -1).clip(0.0, 1.0)
    bary /= bary.sum(-1, keepdims=True)
    return bary, t


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals. vertices [V, 3], faces [T, 3] → [V, 3] float64."""
    v = np.asarray(vertices, np.float64)
    fn = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])  # [T, 3], |fn| = 2·area
    n = np.zeros_like(v)
    for k in range(3):
        for c in range(3):
            n[:, c] += np.bincount(faces[:, k], fn[:, c], minlength=v.shape[0])
    return n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)


def interpolate(values: np.ndarray, faces: np.ndarray, frags: Fragments) -> np.ndarray:
    """Barycentric interpolation of per-vertex values [V, C] at the covered pixels → [P, C]
    (P = frags.mask.sum(), pixels in row-major order)."""
    m = frags.mask
    tri = faces[frags.face[m]]  # [P, 3]
    return np.einsum("pk,pkc->pc", frags.bary[m], np.asarray(values, np.float64)[tri])


def render_frame(head, app, vertices: np.ndarray, head_pose: np.ndarray, cam: Camera, light) -> tuple[np.ndarray, np.ndarray]:
    """Render one frame of the synthetic head.

    Args:
        head: :class:`~.head.SynthHead`. app: the identity's :class:`~.appearance.Appearance`.
        vertices: [V, 3] head-space mesh of the frame (as written to meshes/).
        head_pose: [4, 4] head-to-world. cam: the camera. light: :class:`~.appearance.Light`.
    Returns:
        rgba [H, W, 4] uint8 (alpha = head mask), seg [H, W] uint8 INSTA region ids (0 = background).
    """
    from .appearance import shade

    faces = head.model.faces
    frags = rasterize(to_camera(vertices, head_pose, cam.c2w), faces, cam)
    m = frags.mask
    n = interpolate(vertex_normals(vertices, faces), faces, frags)
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    n_world = np.einsum("pj,ij->pi", n, np.asarray(head_pose, np.float64)[:3, :3])
    attr = interpolate(head.attributes, faces, frags)
    rgb, region = shade(app, head, head.face_kind[frags.face[m]], attr, n_world, light)
    rgba = np.zeros((cam.height, cam.width, 4), np.uint8)
    rgba[m, :3] = np.round(rgb * 255.0).astype(np.uint8)
    rgba[m, 3] = 255
    seg = np.zeros((cam.height, cam.width), np.uint8)
    seg[m] = region
    return rgba, seg
