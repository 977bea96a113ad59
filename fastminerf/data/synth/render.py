"""CPU renderer for the synthetic cast: an exact pinhole z-buffer in numpy.

Every pixel (x, y) is sampled at its centre, the ray ``((x+0.5-cx)/fx, (y+0.5-cy)/fy, 1)``
in camera coordinates (OpenCV axes), and shows the first triangle that ray hits. Coverage is
decided in screen space for front-facing triangles (pinhole projection preserves lines, so
this is the same as ray casting against a closed, consistently oriented mesh); the nearest
triangle per pixel wins a packed (depth, triangle id) minimum; barycentrics are
perspective-correct (those of the ray's hit point on the triangle) and depth is exact, in
float64. No anti-aliasing: a NeRF trained on these images sees exactly these rays.

Why a z-buffer and not BVH ray casting: see ``benchmarks/results/synth_renderer.md``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .appearance import shade
from .fields import vertex_normals

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


#: the synthetic cast's fixed camera: metres, metres, focal length × image size
CAMERA_DISTANCE, CAMERA_HEIGHT, FOCAL = 0.65, -0.025, 2.05


def default_camera(size: int) -> Camera:
    """The cast's fixed camera: at world (0, CAMERA_HEIGHT, CAMERA_DISTANCE) looking along −z;
    focal length FOCAL·size so scalp to neck fills most of the square frame."""
    c2w = np.eye(4)
    c2w[:3, :3] = np.diag([1.0, -1.0, -1.0])
    c2w[1, 3], c2w[2, 3] = CAMERA_HEIGHT, CAMERA_DISTANCE
    f = FOCAL * size
    return Camera(width=size, height=size, fx=f, fy=f, cx=size / 2, cy=size / 2, c2w=c2w)


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
    x = cam.fx * v_cam[:, 0] / z + cam.cx  # pixel coordinates; pixel (i, j) has its centre at (i + 0.5, j + 0.5)
    y = cam.fy * v_cam[:, 1] / z + cam.cy
    a3, b3, c3 = (v_cam[faces[:, k]] for k in range(3))
    front = np.einsum("ti,ti->t", np.cross(b3 - a3, c3 - a3), a3) < 0  # the normal faces the camera
    (x0, x1, x2), (y0, y1, y2), (iz0, iz1, iz2) = (
        (u[faces[:, 0]], u[faces[:, 1]], u[faces[:, 2]]) for u in (x, y, 1.0 / z))
    area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    lo_x = np.maximum(np.floor(np.minimum(np.minimum(x0, x1), x2) - 0.5) + 1, 0)  # first centre ≥ min
    lo_y = np.maximum(np.floor(np.minimum(np.minimum(y0, y1), y2) - 0.5) + 1, 0)
    hi_x = np.minimum(np.floor(np.maximum(np.maximum(x0, x1), x2) - 0.5), W - 1)
    hi_y = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2) - 0.5), H - 1)
    keep = np.flatnonzero(front & (area != 0) & (hi_x >= lo_x) & (hi_y >= lo_y))
    face_out = np.full(H * W, -1, np.int32)
    bary_out = np.zeros((H * W, 3))
    depth_out = np.zeros(H * W)
    if keep.size == 0:
        return Fragments(face_out.reshape(H, W), bary_out.reshape(H, W, 3), depth_out.reshape(H, W))
    # screen-space barycentrics λ0, λ1 and 1/z are affine in (x, y): one [3, 3] matrix per triangle
    k = keep
    inv = 1.0 / area[k]
    l0 = np.stack([(y1 - y2)[k], (x2 - x1)[k], (x1 * y2 - x2 * y1)[k]], -1) * inv[:, None]
    l1 = np.stack([(y2 - y0)[k], (x0 - x2)[k], (x2 * y0 - x0 * y2)[k]], -1) * inv[:, None]
    l2 = -l0 - l1
    l2[:, 2] += 1.0
    iz = l0 * iz0[k, None] + l1 * iz1[k, None] + l2 * iz2[k, None]
    coef = np.concatenate([l0, l1, iz], 1)  # [K, 9]
    w = (hi_x - lo_x + 1).astype(np.int64)[k]
    n = w * (hi_y - lo_y + 1).astype(np.int64)[k]
    local = np.repeat(np.arange(k.size), n)  # [P] candidate (triangle, pixel) pairs
    off = np.arange(local.size) - np.repeat(np.cumsum(n) - n, n)
    px = lo_x[k].astype(np.int64)[local] + off % w[local]
    py = lo_y[k].astype(np.int64)[local] + off // w[local]
    c = coef[local]
    sx, sy = px + 0.5, py + 0.5
    b0 = c[:, 0] * sx + c[:, 1] * sy + c[:, 2]
    b1 = c[:, 3] * sx + c[:, 4] * sy + c[:, 5]
    tol = -1e-12  # shared edges: both neighbours claim the pixel, the depth test picks one
    inside = (b0 >= tol) & (b1 >= tol) & (1.0 - b0 - b1 >= tol)
    c, sx, sy, local, pix = c[inside], sx[inside], sy[inside], local[inside], (py * W + px)[inside]
    inv_z = c[:, 6] * sx + c[:, 7] * sy + c[:, 8]
    key = (np.round(1.0 / inv_z / _DEPTH_QUANT).astype(np.int64) << _ID_BITS) | local
    zbuf = np.full(H * W, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(zbuf, pix, key)
    hit = np.flatnonzero(zbuf != np.iinfo(np.int64).max)
    won = (zbuf[hit] & ((1 << _ID_BITS) - 1)).astype(np.int64)  # index into keep
    cw = coef[won]
    hx, hy = hit % W + 0.5, hit // W + 0.5
    lam = np.stack([cw[:, 0] * hx + cw[:, 1] * hy + cw[:, 2], cw[:, 3] * hx + cw[:, 4] * hy + cw[:, 5]], -1)
    lam = np.concatenate([lam, 1.0 - lam.sum(-1, keepdims=True)], -1).clip(0.0, 1.0)
    inv_z = cw[:, 6] * hx + cw[:, 7] * hy + cw[:, 8]
    tri = keep[won]
    pc = lam * (1.0 / z)[faces[tri]]  # perspective-correct barycentrics of the ray's hit point
    face_out[hit] = tri
    bary_out[hit] = pc / pc.sum(-1, keepdims=True)
    depth_out[hit] = 1.0 / inv_z
    return Fragments(face_out.reshape(H, W), bary_out.reshape(H, W, 3), depth_out.reshape(H, W))


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
