"""Mesh-embedded deformation (INSTA): nearest triangle of the frame's mesh → canonical.

For a sample x (head space) of frame k, find the exact nearest triangle (a, b, c) of frame
k's tracked mesh; write x in the triangle's affine frame

    x = a + u·(b − a) + v·(c − a) + h·n,      n = unit normal,

and rebuild it on the same triangle of the canonical mesh:
x_c = a_c + u·(b_c − a_c) + v·(c_c − a_c) + h·n_c. A point on the deformed triangle lands
on the same barycentric point of the canonical triangle; the offset along the normal is
kept (``height_scale`` "area" scales it by sqrt(area_c / area), like INSTA's eye-region
scaling). View directions are rotated by R_c·R_kᵀ, the rotation between the triangles'
orthonormal frames (tangent = normalised edge ab, normal, bitangent = n × t).

Nearest-triangle search:
- :func:`nearest_triangle_torch` — brute force, exact; the test oracle (small inputs).
- :class:`MeshSet` — the per-step structure: warp-lang BVHs on the CPU (exact
  ``mesh_query_point_no_sign``), the csrc kernel on CUDA when built.
"""
from __future__ import annotations

import os
import threading
import typing
from typing import Literal

import numpy as np
import torch

from ..memory import ByteLRU, process_default_bytes
from ._backend import cuda_ops
from ._warp import init_warp


def closest_point_on_triangle(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Exact closest point on triangles (Voronoi-region test). All [..., 3] → [..., 3]."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(-1), (ac * ap).sum(-1)
    bp = p - b
    d3, d4 = (ab * bp).sum(-1), (ac * bp).sum(-1)
    cp = p - c
    d5, d6 = (ab * cp).sum(-1), (ac * cp).sum(-1)
    va = d3 * d6 - d5 * d4
    vb = d5 * d2 - d1 * d6
    vc = d1 * d4 - d3 * d2
    eps = 1e-30  # guards divisions; (not finfo.tiny: values near it become denormals, ~20x slower on CPU)
    denom = va + vb + vc
    v_in = vb / torch.where(denom.abs() > eps, denom, torch.full_like(denom, eps))
    w_in = vc / torch.where(denom.abs() > eps, denom, torch.full_like(denom, eps))
    q = a + ab * v_in[..., None] + ac * w_in[..., None]  # interior
    # edges
    t_ab = d1 / torch.where((d1 - d3).abs() > eps, d1 - d3, torch.full_like(d1, eps))
    t_ac = d2 / torch.where((d2 - d6).abs() > eps, d2 - d6, torch.full_like(d2, eps))
    t_bc = (d4 - d3) / torch.where(((d4 - d3) + (d5 - d6)).abs() > eps, (d4 - d3) + (d5 - d6), torch.full_like(d4, eps))
    on_bc = (va <= 0) & (d4 - d3 >= 0) & (d5 - d6 >= 0)
    q = torch.where(on_bc[..., None], b + (c - b) * t_bc[..., None], q)
    on_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    q = torch.where(on_ac[..., None], a + ac * t_ac[..., None], q)
    on_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    q = torch.where(on_ab[..., None], a + ab * t_ab[..., None], q)
    # vertices
    q = torch.where(((d6 >= 0) & (d5 <= d6))[..., None], c, q)
    q = torch.where(((d3 >= 0) & (d4 <= d3))[..., None], b, q)
    q = torch.where(((d1 <= 0) & (d2 <= 0))[..., None], a, q)
    return q


def nearest_triangle_torch(points: torch.Tensor, slots: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor, chunk: int = 256):
    """Brute-force exact nearest triangle (the oracle; O(N·T)).

    Args:
        points: [N, 3]. slots: [N] int64 mesh index of each point. vertices: [K, V, 3].
        faces: [T, 3] int64.
    Returns:
        face [N] int64, distance [N] float32.
    """
    N = points.shape[0]
    face = torch.empty(N, dtype=torch.long, device=points.device)
    dist = torch.empty(N, dtype=points.dtype, device=points.device)
    tri = vertices[:, faces]  # [K, T, 3, 3]
    for s in range(0, N, chunk):
        p = points[s : s + chunk, None, :]
        t = tri[slots[s : s + chunk]]  # [n, T, 3, 3]
        q = closest_point_on_triangle(p, t[:, :, 0], t[:, :, 1], t[:, :, 2])
        d2 = ((q - p) ** 2).sum(-1)
        best = d2.argmin(1)
        face[s : s + chunk] = best
        dist[s : s + chunk] = d2.gather(1, best[:, None])[:, 0].sqrt()
    return face, dist


def first_hit_torch(origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor,
                    chunk: int = 256) -> torch.Tensor:
    """Brute-force ray–mesh intersection (Möller–Trumbore; the oracle).

    Args: origins, dirs [R, 3]; slots [R] mesh index; vertices [K, V, 3]; faces [T, 3].
    Returns: t [R] of the first hit along each ray (inf when it misses).
    """
    tri = vertices[:, faces]  # [K, T, 3, 3]
    out = torch.full((origins.shape[0],), float("inf"), dtype=origins.dtype, device=origins.device)
    for s in range(0, origins.shape[0], chunk):
        t3 = tri[slots[s : s + chunk]]
        a, e1, e2 = t3[:, :, 0], t3[:, :, 1] - t3[:, :, 0], t3[:, :, 2] - t3[:, :, 0]
        o, d = origins[s : s + chunk, None], dirs[s : s + chunk, None]
        p = torch.cross(d.expand_as(e2), e2, dim=-1)
        det = (e1 * p).sum(-1)
        inv = 1.0 / torch.where(det.abs() > 1e-12, det, torch.full_like(det, 1e-12))
        tv = o - a
        u = (tv * p).sum(-1) * inv
        q = torch.cross(tv, e1, dim=-1)
        v = (d * q).sum(-1) * inv
        t = (e2 * q).sum(-1) * inv
        ok = (det.abs() > 1e-12) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0)
        out[s : s + chunk] = torch.where(ok, t, torch.full_like(t, float("inf"))).amin(1)
    return out


def _frames(tri: torch.Tensor):
    """Affine and orthonormal frames of triangles tri [..., 3, 3] (vertex, xyz).

    Returns origin a [..., 3], edges e1, e2 [..., 3], unit normal n [..., 3],
    rotation R [..., 3, 3] with columns (t, n × t, n), and twice the area [...].
    """
    a, e1, e2 = tri[..., 0, :], tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :]
    cr = torch.cross(e1, e2, dim=-1)
    area2 = cr.norm(dim=-1).clamp_min(1e-20)
    n = cr / area2[..., None]
    t = e1 / e1.norm(dim=-1, keepdim=True).clamp_min(1e-20)
    R = torch.stack([t, torch.cross(n, t, dim=-1), n], -1)
    return a, e1, e2, n, R, area2


def embed_points_torch(points: torch.Tensor, dirs: torch.Tensor | None, slots: torch.Tensor, face: torch.Tensor,
                       vertices: torch.Tensor, canonical: torch.Tensor, faces: torch.Tensor, height_scale: str = "none"):
    """Carry points (and directions) from frame meshes to the canonical mesh.

    Args:
        points: [N, 3] head space. dirs: [N, 3] unit directions or None. slots: [N] mesh index.
        face: [N] nearest triangle of each point. vertices: [K, V, 3] frame meshes.
        canonical: [V, 3]. faces: [T, 3]. height_scale: "none" or "area".
    Returns:
        x_c [N, 3], d_c [N, 3] or None, barycentric (u, v, h) [N, 3].
    """
    fidx = faces[face]  # [N, 3]
    tri_d = vertices[slots[:, None], fidx]  # [N, 3, 3]
    tri_c = canonical[fidx]
    a, e1, e2, n, R, A = _frames(tri_d)
    ac, e1c, e2c, nc, Rc, Ac = _frames(tri_c)
    rel = points - a
    h = (rel * n).sum(-1)
    p = rel - h[:, None] * n
    g11, g12, g22 = (e1 * e1).sum(-1), (e1 * e2).sum(-1), (e2 * e2).sum(-1)
    r1, r2 = (p * e1).sum(-1), (p * e2).sum(-1)
    det = (g11 * g22 - g12 * g12).clamp_min(1e-30)
    u = (g22 * r1 - g12 * r2) / det
    v = (g11 * r2 - g12 * r1) / det
    hc = h * (Ac / A).sqrt() if height_scale == "area" else h
    x_c = ac + u[:, None] * e1c + v[:, None] * e2c + hc[:, None] * nc
    d_c = None
    if dirs is not None:
        local = torch.einsum("nji,nj->ni", R, dirs)  # R_kᵀ d
        d_c = torch.einsum("nij,nj->ni", Rc, local)
    return x_c, d_c, torch.stack([u, v, h], -1)


def mesh_bytes(n_vertices: int, n_faces: int) -> int:
    """Host bytes warp allocates for one CPU mesh with its BVH: points (12 V) and indices
    (12 T) arrays, triangle bounds (24 T), BVH nodes (2 × 16 B × (2T − 1)), parents
    (4 × (2T − 1)) and primitive indices (4 T) — ≈ 12 V + 112 T (6.3 MB for ICT-FaceKit)."""
    return 12 * n_vertices + 12 * n_faces + 24 * n_faces + 36 * (2 * n_faces - 1) + 4 * n_faces


class _WarpMeshes:
    """warp-lang BVHs, cached by key (a global frame id) in an LRU bounded in bytes
    (:func:`mesh_bytes` per entry; :func:`set_mesh_cache_bytes` sets the cap)."""

    _kernel = None
    _ray_kernel = None

    def __init__(self, capacity_bytes: int):
        self.cache = ByteLRU(capacity_bytes)

    @classmethod
    def kernel(cls):
        if cls._kernel is None:
            wp = init_warp()

            @wp.kernel
            def nearest(ids: wp.array(dtype=wp.uint64), slots: wp.array(dtype=wp.int32), pts: wp.array(dtype=wp.vec3),
                        max_dist: float, face: wp.array(dtype=wp.int32), dist: wp.array(dtype=wp.float32)):
                tid = wp.tid()
                p = pts[tid]
                q = wp.mesh_query_point_no_sign(ids[slots[tid]], p, max_dist)
                if q.result:
                    face[tid] = q.face
                    dist[tid] = wp.length(wp.mesh_eval_position(ids[slots[tid]], q.face, q.u, q.v) - p)
                else:
                    face[tid] = -1
                    dist[tid] = max_dist

            cls._kernel = nearest
        return cls._kernel

    @classmethod
    def ray_kernel(cls):
        if cls._ray_kernel is None:
            wp = init_warp()

            @wp.kernel
            def first_hit(ids: wp.array(dtype=wp.uint64), slots: wp.array(dtype=wp.int32), orig: wp.array(dtype=wp.vec3),
                          dirs: wp.array(dtype=wp.vec3), max_t: float, t_out: wp.array(dtype=wp.float32)):
                tid = wp.tid()
                q = wp.mesh_query_ray(ids[slots[tid]], orig[tid], dirs[tid], max_t)
                if q.result:
                    t_out[tid] = q.t
                else:
                    t_out[tid] = max_t

            cls._ray_kernel = first_hit
        return cls._ray_kernel

    def mesh(self, key, vertices: np.ndarray, faces: np.ndarray):
        wp = init_warp()

        if key is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        m = wp.Mesh(points=wp.array(np.ascontiguousarray(vertices, np.float32), dtype=wp.vec3, device="cpu"),
                    indices=wp.array(np.ascontiguousarray(faces, np.int32).reshape(-1), dtype=wp.int32, device="cpu"))
        if key is not None:
            self.cache.put(key, m, mesh_bytes(vertices.shape[0], faces.shape[0]))
        return m


_WARP = _WarpMeshes(process_default_bytes())


def set_mesh_cache_bytes(capacity: int) -> None:
    """Cap (bytes) of the BVHs kept between steps (least recently used dropped first)."""
    _WARP.cache.resize(capacity)


def mesh_cache() -> ByteLRU:
    """The process-wide BVH cache (its ``nbytes``, ``capacity``, ``evictions``, ``len``)."""
    return _WARP.cache


_THREADS = int(os.environ.get("FASTMINERF_WARP_THREADS", min(4, os.cpu_count() or 1)))


MeshSearch = Literal["brute", "warp", "cuda"]


class MeshSet:
    """K meshes of one topology with an exact nearest-triangle query.

    Args:
        vertices: [K, V, 3] float32 head-space meshes.
        faces: [T, 3] int64.
        keys: optional K hashable ids (e.g. ("cast-id", global frame)) under which the
            acceleration structures of static meshes are cached across steps.
        search: how the nearest triangle is found — "brute" (exhaustive torch; tests only),
            "warp" (warp-lang BVHs on the CPU) or "cuda" (csrc LBVH, built on the GPU on the
            first query and reused by later ones). Not the ops backend: a "torch"-backend
            model still searches with warp on the CPU.
    """

    def __init__(self, vertices: torch.Tensor, faces: torch.Tensor, keys: list | None = None, search: MeshSearch = "warp"):
        if search not in typing.get_args(MeshSearch):
            raise ValueError(f"search must be one of {typing.get_args(MeshSearch)}, got {search!r}")
        self.vertices, self.faces, self.keys, self.search = vertices, faces, keys, search
        self._warp = None
        self._bvh = None

    def nearest(self, points: torch.Tensor, slots: torch.Tensor, max_dist: float = 1e6):
        """Nearest triangle of each point's mesh: points [N, 3], slots [N] → face [N] int64,
        distance [N] float32. Points farther than ``max_dist`` get face −1... only on the
        warp path; the torch and cuda paths always return the exact nearest."""
        if self.search == "brute" or points.shape[0] == 0:
            return nearest_triangle_torch(points, slots, self.vertices, self.faces)
        if self.search == "cuda":
            ops = cuda_ops()
            if self._bvh is None:  # built on the GPU once per MeshSet (~1 ms for 128 meshes of 10k faces)
                self._bvh = ops.build_bvh(self.vertices, self.faces)
            return ops.nearest_triangle(points, slots, self.vertices, self.faces, bvh=self._bvh)
        return self._nearest_warp(points, slots, max_dist)

    def first_hit(self, origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        """Distance along each ray to its mesh (first hit): origins, dirs [R, 3], slots [R]
        → t [R] (inf when the ray misses)."""
        if self.search == "brute" or origins.shape[0] == 0:
            return first_hit_torch(origins, dirs, slots, self.vertices, self.faces)
        if self.search == "cuda":
            ops = cuda_ops()
            if self._bvh is None:
                self._bvh = ops.build_bvh(self.vertices, self.faces)
            return ops.first_hit(origins, dirs, slots, self.vertices, self.faces, bvh=self._bvh)
        wp = self._warp_meshes()
        R = origins.shape[0]
        t = wp.empty(R, dtype=wp.float32, device="cpu")
        big = 1e6
        wp.launch(_WarpMeshes.ray_kernel(), dim=R, inputs=[
            self._warp[1], wp.array(slots.cpu().int().contiguous().numpy(), dtype=wp.int32, device="cpu"),
            wp.array(origins.detach().cpu().float().contiguous().numpy(), dtype=wp.vec3, device="cpu"),
            wp.array(dirs.detach().cpu().float().contiguous().numpy(), dtype=wp.vec3, device="cpu"), big, t], device="cpu")
        out = torch.from_numpy(t.numpy())
        out[out >= big] = float("inf")
        return out.to(origins.device)

    def _warp_meshes(self):
        wp = init_warp()
        if self._warp is None:
            v = self.vertices.detach().cpu().numpy()
            f = self.faces.cpu().numpy()
            keys = self.keys or [None] * v.shape[0]
            meshes = [_WARP.mesh(k, v[i], f) for i, k in enumerate(keys)]
            self._warp = (meshes, wp.array(np.array([m.id for m in meshes], np.uint64), dtype=wp.uint64, device="cpu"))
        return wp

    def _nearest_warp(self, points, slots, max_dist):
        kernel = _WarpMeshes.kernel()
        wp = self._warp_meshes()
        ids = self._warp[1]
        N = points.shape[0]
        # points sorted by mesh keep each BVH hot in cache (~2.4x faster); warp's CPU
        # launches are single-threaded but release the GIL, so halves run on two threads
        order = torch.argsort(slots.cpu(), stable=True)
        pts_np = points.detach().cpu().float()[order].contiguous().numpy()
        sl_np = slots.cpu().int()[order].contiguous().numpy()
        face_np = np.empty(N, np.int32)
        dist_np = np.empty(N, np.float32)

        def run(lo: int, hi: int) -> None:
            n = int(hi - lo)
            face = wp.empty(n, dtype=wp.int32, device="cpu")
            dist = wp.empty(n, dtype=wp.float32, device="cpu")
            wp.launch(kernel, dim=n, inputs=[ids, wp.array(sl_np[lo:hi], dtype=wp.int32, device="cpu"),
                      wp.array(pts_np[lo:hi], dtype=wp.vec3, device="cpu"), float(max_dist), face, dist], device="cpu")
            face_np[lo:hi], dist_np[lo:hi] = face.numpy(), dist.numpy()

        n_threads = max(1, min(_THREADS, N // 4096))
        bounds = [int(b) for b in np.linspace(0, N, n_threads + 1)]
        workers = [threading.Thread(target=run, args=(bounds[i], bounds[i + 1])) for i in range(1, n_threads)]
        for w in workers:
            w.start()
        run(bounds[0], bounds[1])
        for w in workers:
            w.join()
        face_t, dist_t = torch.empty(N, dtype=torch.long), torch.empty(N)
        face_t[order], dist_t[order] = torch.from_numpy(face_np).long(), torch.from_numpy(dist_np)
        return face_t.to(points.device), dist_t.to(points.device)
