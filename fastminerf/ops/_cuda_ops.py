"""Thin autograd wrappers over the compiled kernels (the middle layer, as gsplat's
``_wrapper.py``): shapes in docstrings, cheap asserts that print the offending shape,
``.contiguous()``, and short ``autograd.Function``s whose backward calls the ``_bwd``
kernel. :class:`CudaOps` holds the loaded extension; get it with
:func:`fastminerf.ops._backend.cuda_ops`. Every method matches its torch twin:

=====================  ===============================================
``hash_grid_encode``   :func:`fastminerf.ops.hashgrid.hash_grid_encode_torch`
``hash_grid_rows``     :func:`fastminerf.ops.hashgrid.grid_indices` (rows only)
``nearest_triangle``   :func:`fastminerf.ops.embed.nearest_triangle_torch`
``march_rays``         :func:`fastminerf.ops.march.march_rays_torch`
``composite``          :func:`fastminerf.ops.composite.composite_torch`
=====================  ===============================================
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.autograd.function import once_differentiable


def _shape(t) -> tuple:
    return tuple(t.shape)


class Bvh(NamedTuple):
    """LBVHs of K meshes with T faces: nodes [K·(T−1), 16] int32 (64-byte nodes),
    tris [K·T, 9] float32 (leaf triangles in Morton order), leaf_face [K·T] int32."""

    nodes: torch.Tensor
    tris: torch.Tensor
    leaf_face: torch.Tensor
    n_meshes: int
    n_faces: int


class _HashGridFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, table, C, levels, half):
        t = table.detach()
        t = (t.half() if half else t).contiguous()
        ctx.save_for_backward(x, t)
        ctx.C, ctx.levels, ctx.shape = C, levels, table.shape
        return C.hash_grid_fwd(x, t, levels)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        x, t = ctx.saved_tensors
        g = g.float().contiguous()
        gx = ctx.C.hash_grid_bwd_x(x, t, g, ctx.levels) if ctx.needs_input_grad[0] else None
        gt = None
        if ctx.needs_input_grad[1]:
            gt = ctx.C.hash_grid_bwd_table(x, g, ctx.shape[0], ctx.shape[1], ctx.levels)  # float32 accumulation
        return gx, gt, None, None, None


class _CompositeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays, C):
        rgb, opacity, depth, weights, ray_start = C.composite_fwd(sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays)
        ctx.save_for_backward(sigmas, rgbs, t_starts, t_ends, ray_start, weights)
        ctx.C = C
        ctx.set_materialize_grads(False)  # unused outputs reach backward as None (no zero tensors)
        return rgb, opacity, depth, weights

    @staticmethod
    @once_differentiable
    def backward(ctx, g_rgb, g_opacity, g_depth, g_weights):
        sigmas, rgbs, t_starts, t_ends, ray_start, weights = ctx.saved_tensors
        if g_rgb is None:
            g_rgb = torch.zeros(ray_start.shape[0] - 1, 3, device=sigmas.device)

        def c(t):
            return None if t is None else t.float().contiguous()

        g_s, g_c = ctx.C.composite_bwd(sigmas, rgbs, t_starts, t_ends, ray_start, weights, c(g_rgb), c(g_opacity),
                                       c(g_depth), c(g_weights))
        return g_s, g_c, None, None, None, None, None


class CudaOps:
    """The CUDA paths of the hot ops over a loaded extension module ``C``."""

    def __init__(self, C):
        self.C = C
        self._levels: dict = {}

    # ------------------------------------------------------------- hash grid
    def _level_args(self, spec):
        if spec not in self._levels:
            lay = spec.layout
            self._levels[spec] = self.C.LevelArgs([float(s) for s in lay["scale"]], [int(r) for r in lay["resolution"]],
                                                  [int(s) for s in lay["size"]], [int(o) for o in lay["offset"][:-1]],
                                                  [bool(h) for h in lay["hashed"]])
        return self._levels[spec]

    def hash_grid_encode(self, x: torch.Tensor, table: torch.Tensor, spec, half: bool = False) -> torch.Tensor:
        """Encode x [N, 3] (float32 in [0, 1]³) with table [P, F] (float32 or float16, F in
        1/2/4/8) → [N, L·F] float32, level-major. ``half``: read a float16 copy of a float32
        table (gradients still accumulate in float32 into the float32 table)."""
        assert x.ndim == 2 and x.shape[1] == 3, f"x must be [N, 3], got {_shape(x)}"
        assert table.shape == (spec.n_params, spec.n_features), \
            f"table must be [{spec.n_params}, {spec.n_features}], got {_shape(table)}"
        return _HashGridFn.apply(x.float().contiguous(), table, self.C, self._level_args(spec), half)

    def hash_grid_rows(self, x: torch.Tensor, spec) -> torch.Tensor:
        """Absolute table rows [N, L, 8] int64 of the 8 corners per level (as grid_indices)."""
        assert x.ndim == 2 and x.shape[1] == 3, f"x must be [N, 3], got {_shape(x)}"
        return self.C.hash_grid_rows(x.float().contiguous(), self._level_args(spec))

    # ------------------------------------------------------------- nearest triangle
    def build_bvh(self, vertices: torch.Tensor, faces: torch.Tensor) -> Bvh:
        """LBVHs of meshes vertices [K, V, 3] float32 sharing faces [T, 3] (int32/int64)."""
        assert vertices.ndim == 3 and vertices.shape[2] == 3, f"vertices must be [K, V, 3], got {_shape(vertices)}"
        assert faces.ndim == 2 and faces.shape[1] == 3, f"faces must be [T, 3], got {_shape(faces)}"
        v = vertices.detach().float().contiguous()
        nodes, tris, leaf_face = self.C.bvh_build(v, faces.to(v.device).contiguous())
        return Bvh(nodes, tris, leaf_face, v.shape[0], faces.shape[0])

    def nearest_triangle(self, points: torch.Tensor, slots: torch.Tensor, vertices: torch.Tensor, faces: torch.Tensor,
                         bvh: Bvh | None = None, sort_by_slot: bool = True):
        """Exact nearest triangle of points [N, 3] in mesh slots [N] (int64) of vertices
        [K, V, 3] / faces [T, 3] → face [N] int64, distance [N] float32. ``bvh`` (from
        :meth:`build_bvh` on the same meshes) is built here when None. Ties go to the
        smaller face index, as the torch twin."""
        assert points.ndim == 2 and points.shape[1] == 3, f"points must be [N, 3], got {_shape(points)}"
        assert slots.shape == points.shape[:1], f"slots must be [{points.shape[0]}], got {_shape(slots)}"
        bvh = bvh or self.build_bvh(vertices, faces)
        assert bvh.n_meshes == vertices.shape[0] and bvh.n_faces == faces.shape[0], "bvh built for other meshes"
        return self.C.nearest_triangle(points.detach().float().contiguous(), slots.long().contiguous(), bvh.nodes,
                                       bvh.tris, bvh.leaf_face, bvh.n_meshes, bvh.n_faces, sort_by_slot)

    def first_hit(self, origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor, vertices: torch.Tensor,
                  faces: torch.Tensor, bvh: Bvh | None = None) -> torch.Tensor:
        """Distance t [R] along rays origins, dirs [R, 3] to the first triangle of mesh
        slots [R] they hit (inf when none), as first_hit_torch."""
        assert origins.shape == dirs.shape and origins.ndim == 2 and origins.shape[1] == 3, \
            f"origins and dirs must be [R, 3], got {_shape(origins)}, {_shape(dirs)}"
        assert slots.shape == origins.shape[:1], f"slots must be [{origins.shape[0]}], got {_shape(slots)}"
        bvh = bvh or self.build_bvh(vertices, faces)
        assert bvh.n_meshes == vertices.shape[0] and bvh.n_faces == faces.shape[0], "bvh built for other meshes"
        return self.C.first_hit(origins.detach().float().contiguous(), dirs.detach().float().contiguous(),
                                slots.long().contiguous(), bvh.nodes, bvh.tris, bvh.n_meshes, bvh.n_faces)

    # ------------------------------------------------------------- marching
    def march_rays(self, origins: torch.Tensor, dirs: torch.Tensor, aabb: torch.Tensor, grid: torch.Tensor, dt: float,
                   max_steps: int | None = None):
        """Packed samples of rays origins, dirs [N, 3] through occupied cells of grid
        [R, R, R] (bool) over aabb [6] with step dt → ray_indices [S] int64 (sorted),
        t_starts [S], t_ends [S]. Same samples as march_rays_torch, bit for bit."""
        assert origins.ndim == 2 and origins.shape[1] == 3, f"origins must be [N, 3], got {_shape(origins)}"
        assert dirs.shape == origins.shape, f"dirs must be {_shape(origins)}, got {_shape(dirs)}"
        assert aabb.numel() == 6, f"aabb must be [6], got {_shape(aabb)}"
        assert grid.ndim == 3 and grid.shape[0] == grid.shape[1] == grid.shape[2], f"grid must be [R, R, R], got {_shape(grid)}"
        diag = float((aabb[3:] - aabb[:3]).norm())  # as march_rays_torch
        n_steps = max_steps or int(diag / dt) + 1
        return self.C.march_rays(origins.detach().float().contiguous(), dirs.detach().float().contiguous(),
                                 aabb.detach().float().contiguous(), grid.contiguous(), float(dt), int(n_steps))

    # ------------------------------------------------------------- compositing
    def composite(self, sigmas, rgbs, t_starts, t_ends, ray_indices, n_rays: int, background=None) -> dict:
        """Composite packed samples (ray_indices sorted): sigmas [S], rgbs [S, 3],
        t_starts/t_ends [S], n_rays R, background [R, 3] / [3] / None → dict rgb [R, 3],
        opacity [R], depth [R], weights [S]. Gradients flow to sigmas and rgbs (and to
        background, which is blended in torch)."""
        S = sigmas.shape[0]
        assert sigmas.ndim == 1 and rgbs.shape == (S, 3), f"sigmas [S], rgbs [S, 3]; got {_shape(sigmas)}, {_shape(rgbs)}"
        assert t_starts.shape == t_ends.shape == ray_indices.shape == (S,), \
            f"t_starts, t_ends, ray_indices must be [{S}], got {_shape(t_starts)}, {_shape(t_ends)}, {_shape(ray_indices)}"
        rgb, opacity, depth, weights = _CompositeFn.apply(
            sigmas.float().contiguous(), rgbs.float().contiguous(), t_starts.detach().float().contiguous(),
            t_ends.detach().float().contiguous(), ray_indices.long().contiguous(), int(n_rays), self.C)
        if background is not None:
            rgb = rgb + (1 - opacity)[:, None] * background
        return {"rgb": rgb, "opacity": opacity, "depth": depth, "weights": weights}
