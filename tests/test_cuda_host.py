"""The kernels' per-item code, run serially on the CPU, against the torch twins.

Every kernel in csrc/ is a thin ``__global__`` loop around ``__host__ __device__`` functions
in csrc/*.cuh (one point, one ray, one BVH node). tests/cuda_host/host_check.cu calls the
same functions from host code, so on a machine without a GPU we still check, with nvcc:
hash-grid rows (exactly), features and both gradients; LBVH build (Morton keys, Karras
nodes, refit) and the nearest-triangle traversal; marched samples (exactly); compositing
forward and backward. What only a GPU can check (launch shapes, atomics under contention,
the refit's memory ordering, the torch adapters at run time) is in test_cuda_ops.py.
"""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import torch
from test_cuda_ops import (
    NVCC,
    ROOT,
    SPECS,
    _check_first_hit,
    _check_nearest,
    _gen,
    _grid_points,
    _hit_rays,
    _meshes,
    _packed,
    _rays,
)

from fastminerf.ops.composite import composite_torch
from fastminerf.ops.embed import first_hit_torch
from fastminerf.ops.hashgrid import grid_indices, hash_grid_encode_torch
from fastminerf.ops.march import march_rays_torch

pytestmark = pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")

LEVELS = np.dtype([("n_levels", "<i4"), ("hashed", "<u4"), ("scale", "<f4", 32), ("resolution", "<u4", 32),
                   ("size", "<u4", 32), ("offset", "<u4", 32)])


@pytest.fixture(scope="module")
def host_check(tmp_path_factory):
    exe = tmp_path_factory.mktemp("host_check") / "host_check"
    cmd = [NVCC, "-O2", "-std=c++17", "-Xcompiler", "-ffp-contract=off", f"-I{ROOT / 'csrc'}",
           str(ROOT / "tests" / "cuda_host" / "host_check.cu"), "-o", str(exe)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]

    def run(op: str, folder, *args):
        r = subprocess.run([str(exe), op, str(folder), *map(str, args)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    return run


def _write(folder, **arrays):
    for name, a in arrays.items():
        np.ascontiguousarray(a).tofile(folder / name)


def _read(folder, name, dtype, shape):
    return torch.from_numpy(np.fromfile(folder / name, dtype=dtype).reshape(shape))


def _levels(spec) -> np.ndarray:
    lay = spec.layout
    L = spec.n_levels
    lv = np.zeros(1, LEVELS)
    lv["n_levels"] = L
    lv["hashed"] = sum(1 << i for i in range(L) if lay["hashed"][i])
    lv["scale"][0, :L] = lay["scale"]
    lv["resolution"][0, :L] = lay["resolution"]
    lv["size"][0, :L] = lay["size"]
    lv["offset"][0, :L] = lay["offset"][:-1]
    return lv


@pytest.mark.parametrize("name", ["small", "insta"])
def test_hash_grid_per_item_code(host_check, tmp_path, name):
    spec = SPECS[name]
    n, L, F, P = 3000, spec.n_levels, spec.n_features, spec.n_params
    x = _grid_points(n, 20, "cpu").requires_grad_()
    table = (torch.randn(P, F, generator=_gen(21)) * 0.1).requires_grad_()
    g = torch.randn(n, L * F, generator=_gen(22))
    _write(tmp_path, x=x.detach().numpy(), table=table.detach().numpy(), levels=_levels(spec), grad_out=g.numpy())
    host_check("hash", tmp_path, n, F, P)
    rows, _, _ = grid_indices(x, spec)
    assert torch.equal(_read(tmp_path, "rows", np.int64, (n, L, 8)), rows)
    ref = hash_grid_encode_torch(x, table, spec)
    torch.testing.assert_close(_read(tmp_path, "out", np.float32, (n, L * F)), ref, atol=1e-6, rtol=1e-5)
    rx, rt = torch.autograd.grad(ref, (x, table), g)
    torch.testing.assert_close(_read(tmp_path, "grad_table", np.float32, (P, F)), rt, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(_read(tmp_path, "grad_x", np.float32, (n, 3)), rx, atol=1e-3, rtol=1e-4)


def _nearest(host_check, folder, verts, faces, points, slots):
    K, V, _ = verts.shape
    _write(folder, verts=verts.numpy(), faces=faces.numpy().astype(np.int32), points=points.numpy(), slots=slots.numpy())
    host_check("nearest", folder, K, V, faces.shape[0], points.shape[0])
    N = points.shape[0]
    return _read(folder, "face", np.int64, (N,)), _read(folder, "dist", np.float32, (N,))


@pytest.mark.parametrize("subdivisions,n", [(3, 3000), (5, 300)])
def test_lbvh_nearest_per_item_code(host_check, tmp_path, subdivisions, n):
    verts, faces = _meshes(subdivisions, K=3)
    g = _gen(23)
    near = torch.nn.functional.normalize(torch.randn(n // 2, 3, generator=g), dim=-1) * (0.1 + 0.02 * torch.randn(n // 2, 1, generator=g))
    far = (torch.rand(n - n // 2, 3, generator=g) * 2 - 1) * 0.5
    points = torch.cat([near, far])
    slots = torch.randint(3, (n,), generator=g)
    face, dist = _nearest(host_check, tmp_path, verts, faces, points, slots)
    _check_nearest(points, slots, verts, faces, face, dist)


def test_lbvh_edge_cases_per_item_code(host_check, tmp_path):
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    p = torch.tensor([[0.2, 0.2, 1.0], [2.0, 0.0, 0.0], [-1.0, -1.0, -1.0]])
    face, dist = _nearest(host_check, tmp_path, tri, torch.tensor([[0, 1, 2]]), p, torch.zeros(3, dtype=torch.long))
    assert face.tolist() == [0, 0, 0]
    torch.testing.assert_close(dist, torch.tensor([1.0, 1.0, 3**0.5]))
    verts, faces = _meshes(2, K=2)
    dup = torch.cat([faces, faces])  # equal Morton codes; ties go to the smaller face index
    pts = (torch.rand(1000, 3, generator=_gen(24)) - 0.5) * 0.4
    sl = torch.randint(2, (1000,), generator=_gen(25))
    face, dist = _nearest(host_check, tmp_path, verts, dup, pts, sl)
    assert int(face.max()) < faces.shape[0]
    _check_nearest(pts, sl, verts, dup, face, dist)
    flat = verts.clone()
    flat[..., 2] = 0.0  # a flat mesh: zero extent along z in the Morton box
    face, dist = _nearest(host_check, tmp_path, flat, faces, pts, sl)
    _check_nearest(pts, sl, flat, faces, face, dist)


def test_lbvh_first_hit_per_item_code(host_check, tmp_path):
    verts, faces = _meshes(3, K=3)
    o, d = _hit_rays(3000, 27)
    sl = torch.randint(3, (3000,), generator=_gen(28))
    _write(tmp_path, verts=verts.numpy(), faces=faces.numpy().astype(np.int32), origins=o.numpy(), dirs=d.numpy(), slots=sl.numpy())
    host_check("first_hit", tmp_path, 3, verts.shape[1], faces.shape[0], 3000)
    t = _read(tmp_path, "t", np.float32, (3000,))
    ref = first_hit_torch(o, d, sl, verts, faces)
    assert 0.2 < torch.isfinite(ref).float().mean() < 0.95  # hits and misses both occur
    _check_first_hit(t, ref)


@pytest.mark.parametrize("R,fill,max_steps", [(32, 0.3, None), (64, 0.5, 40), (16, 0.0, None)])
def test_march_per_item_code_is_exact(host_check, tmp_path, R, fill, max_steps):
    aabb = torch.tensor([-0.7, -0.6, -0.8, 0.65, 0.7, 0.6])
    grid = torch.rand(R, R, R, generator=_gen(R)) < fill
    o, d = _rays(3000, 26, "cpu")
    dt = float((aabb[3:] - aabb[:3]).norm()) / 300
    n_steps = max_steps or int(float((aabb[3:] - aabb[:3]).norm()) / dt) + 1  # as the wrapper
    _write(tmp_path, origins=o.numpy(), dirs=d.numpy(), aabb=aabb.numpy(), grid=grid.numpy().astype(np.uint8))
    host_check("march", tmp_path, 3000, R, n_steps, float(np.float32(dt)).hex(), float(np.float32(0.5 * dt)).hex())
    ri, t0, t1 = march_rays_torch(o, d, aabb, grid, dt, max_steps)
    S = ri.shape[0]
    got = _read(tmp_path, "ray_indices", np.int64, (-1,))
    assert got.shape[0] == S, f"{got.shape[0]} samples, twin {S}"
    assert torch.equal(got, ri)
    assert torch.equal(_read(tmp_path, "t_starts", np.float32, (S,)), t0)
    assert torch.equal(_read(tmp_path, "t_ends", np.float32, (S,)), t1)


def test_composite_per_item_code(host_check, tmp_path):
    R = 2000
    sig, rgb, t0, t1, ri = _packed(R, 27, "cpu")
    S = sig.shape[0]
    start = torch.searchsorted(ri, torch.arange(R + 1))
    g = _gen(28)
    cot = {"rgb": torch.randn(R, 3, generator=g), "opacity": torch.randn(R, generator=g),
           "depth": torch.randn(R, generator=g), "weights": torch.randn(S, generator=g)}
    _write(tmp_path, sigmas=sig.numpy(), rgbs=rgb.numpy(), t_starts=t0.numpy(), t_ends=t1.numpy(), ray_start=start.numpy(),
           g_rgb=cot["rgb"].numpy(), g_opacity=cot["opacity"].numpy(), g_depth=cot["depth"].numpy(),
           g_weights=cot["weights"].numpy())
    host_check("composite", tmp_path, R, S)
    sig.requires_grad_()
    rgb.requires_grad_()
    ref = composite_torch(sig, rgb, t0, t1, ri, R)
    shapes = {"rgb": (R, 3), "opacity": (R,), "depth": (R,), "weights": (S,)}
    for k, shape in shapes.items():
        torch.testing.assert_close(_read(tmp_path, k, np.float32, shape), ref[k], atol=1e-5, rtol=1e-4)
    gs, gc = torch.autograd.grad([ref[k] for k in shapes], (sig, rgb), [cot[k] for k in shapes])
    torch.testing.assert_close(_read(tmp_path, "g_rgbs", np.float32, (S, 3)), gc, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(_read(tmp_path, "g_sigmas", np.float32, (S,)), gs, atol=1e-4, rtol=1e-3)
