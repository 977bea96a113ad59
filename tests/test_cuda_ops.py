"""CUDA kernels (csrc/) against their torch twins, backends, and the build.

GPU tests (marked ``GPU``) run each kernel and its torch twin on the same random inputs
and compare outputs and gradients (``torch.autograd.grad`` with the same cotangents) with
per-op tolerances; hash-grid rows and marched samples must be equal exactly. They skip
where ``torch.cuda.is_available()`` is False; where it is True, a kernel build failure is
an error, not a skip. CPU tests: every .cu compiles with plain ``nvcc -c`` (sm_80 + sm_90),
the torch adapters compile against torch's headers, backend resolution says "torch" with a
reason, and importing fastminerf compiles nothing.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from fastminerf.errors import InputError
from fastminerf.ops import _backend, _cuda_ext
from fastminerf.ops._cuda_ops import CudaOps
from fastminerf.ops.composite import composite_torch
from fastminerf.ops.embed import MeshSet, closest_point_on_triangle, first_hit_torch, nearest_triangle_torch
from fastminerf.ops.hashgrid import HashGridSpec, grid_indices, hash_grid_encode, hash_grid_encode_torch
from fastminerf.ops.march import march_rays_torch

ROOT = Path(__file__).resolve().parent.parent
GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
ARCHS = ("80", "90")


def _cuda_home() -> Path | None:
    for c in (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda"):
        if c and (Path(c) / "include" / "cuda_runtime.h").is_file():
            return Path(c)
    return None


def _nvcc() -> str | None:
    home = _cuda_home()
    if home is not None and (home / "bin" / "nvcc").is_file():
        return str(home / "bin" / "nvcc")
    return shutil.which("nvcc")


NVCC = _nvcc()


@pytest.fixture(scope="module")
def ops() -> CudaOps:
    return _backend.cuda_ops()  # builds on first use; a build error fails the GPU tests


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ============================================================================ CPU: build and backends
@pytest.mark.skipif(NVCC is None, reason="nvcc not found (set CUDA_HOME or put nvcc on PATH)")
def test_kernels_compile_with_nvcc(tmp_path):
    """Every csrc/*.cu compiles without torch headers (plain CUDA C++), for sm_80 and sm_90."""
    gencode = [f"-gencode=arch=compute_{a},code=sm_{a}" for a in ARCHS]

    def build(src: Path):
        cmd = [NVCC, "-c", str(src), "-o", str(tmp_path / f"{src.stem}.o"), "-O3", "-std=c++17", *gencode]
        r = subprocess.run(cmd, capture_output=True, text=True)
        return src.name, r.returncode, r.stderr

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        results = list(pool.map(build, _cuda_ext.kernel_sources()))
    assert len(results) >= 7, [r[0] for r in results]
    failed = [f"{name}:\n{err}" for name, rc, err in results if rc != 0]
    assert not failed, "\n".join(failed)
    print(f"compiled {len(results)} kernels for sm_{'+sm_'.join(ARCHS)} in {time.perf_counter() - t0:.1f} s")


def _torch_include_dirs() -> list[Path]:
    base = Path(torch.__file__).parent / "include"
    return [base, base / "torch" / "csrc" / "api" / "include"]


@pytest.mark.skipif(_cuda_home() is None or shutil.which("g++") is None,
                    reason="needs g++ and the CUDA toolkit headers (set CUDA_HOME)")
def test_torch_adapters_compile(tmp_path):
    """csrc/torch_ops.cpp (tensor checks, allocation, launches) compiles against this
    torch's headers. A CPU build of torch lacks one generated CUDA header; an empty stand-in
    is written for it (it only defines a shared-library export macro)."""
    stub = tmp_path / "stub" / "c10" / "cuda" / "impl"
    stub.mkdir(parents=True)
    (stub / "cuda_cmake_macros.h").write_text("#pragma once\n")
    cuda_inc = _cuda_home() / "include"
    inc = [tmp_path / "stub", *_torch_include_dirs(), cuda_inc, Path(sysconfig.get_paths()["include"])]
    cmd = ["g++", "-fsyntax-only", "-std=c++20", *[f"-I{p}" for p in inc], str(ROOT / "csrc" / "torch_ops.cpp")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-4000:]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the GPU tests cover the cuda backend")
def test_backend_resolution_without_gpu(caplog):
    with caplog.at_level("INFO", logger="fastminerf"):
        assert _backend.resolve_backend("auto") == "torch"
    assert "backend: torch (cuda unavailable: torch.cuda.is_available() is False)" in caplog.text
    assert _backend.resolve_backend("torch") == "torch"
    with pytest.raises(InputError, match="backend 'cuda' requested but unavailable: torch.cuda.is_available"):
        _backend.resolve_backend("cuda")
    with pytest.raises(InputError, match="tinycudann"):
        _backend.resolve_backend("tcnn")
    with pytest.raises(RuntimeError, match=r"CUDA kernels unavailable \(torch.cuda.is_available\(\) is False\)"):
        _backend.cuda_ops()
    assert _backend.ops_backend("torch") == "torch" and _backend.ops_backend("tcnn") == "torch"


def test_importing_fastminerf_compiles_nothing(tmp_path):
    """Importing every module (and, without a GPU, resolving "auto") builds nothing."""
    cache = tmp_path / "cuda-cache"
    code = (
        "import sys, pkgutil, importlib, fastminerf\n"
        "for m in pkgutil.walk_packages(fastminerf.__path__, 'fastminerf.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "from fastminerf.ops import _backend\n"
        "assert _backend._CUDA is None, 'extension touched at import'\n"
        "assert 'torch.utils.cpp_extension' not in sys.modules, 'cpp_extension imported at import time'\n"
        "import torch\n"
        "if not torch.cuda.is_available():\n"
        "    assert _backend.resolve_backend('auto') == 'torch'\n"
        "    assert 'torch.utils.cpp_extension' not in sys.modules\n"
        "print('ok')\n"
    )
    env = {**os.environ, "FASTMINERF_CUDA_CACHE": str(cache)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]
    assert not cache.exists()


def test_wrappers_check_shapes_before_launching():
    """The wrappers' cheap asserts name the offending shape (no extension needed)."""
    ops = CudaOps(C=None)
    spec = HashGridSpec(n_levels=2, n_features=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=2.0)
    with pytest.raises(AssertionError, match=r"x must be \[N, 3\], got \(5, 2\)"):
        ops.hash_grid_encode(torch.zeros(5, 2), torch.zeros(spec.n_params, 2), spec)
    with pytest.raises(AssertionError, match=r"table must be \[.*\], got \(3, 2\)"):
        ops.hash_grid_encode(torch.zeros(5, 3), torch.zeros(3, 2), spec)
    with pytest.raises(AssertionError, match=r"slots must be \[4\], got \(3,\)"):
        ops.nearest_triangle(torch.zeros(4, 3), torch.zeros(3, dtype=torch.long), torch.zeros(1, 3, 3), torch.zeros(1, 3))
    with pytest.raises(AssertionError, match=r"grid must be \[R, R, R\], got \(4, 4\)"):
        ops.march_rays(torch.zeros(2, 3), torch.ones(2, 3), torch.arange(6.0), torch.ones(4, 4, dtype=torch.bool), 0.1)
    with pytest.raises(AssertionError, match=r"rgbs \[S, 3\]; got \(4,\), \(4, 4\)"):
        ops.composite(torch.zeros(4), torch.zeros(4, 4), torch.zeros(4), torch.zeros(4), torch.zeros(4, dtype=torch.long), 1)


class TwinKernels:
    """Stands in for the compiled module on the CPU: every entry point returns what its
    kernel returns, computed with the torch twins, so the autograd wrappers of
    _cuda_ops.py (argument order, saved tensors, gradient plumbing) run without a GPU."""

    def __init__(self, spec):
        self.spec = spec

    def LevelArgs(self, *lists):  # noqa: N802 (the extension's class name)
        return lists

    def hash_grid_fwd(self, x, t, lv):
        return hash_grid_encode_torch(x, t.float(), self.spec)

    @torch.enable_grad()  # (backward runs with grad mode off)
    def hash_grid_bwd_x(self, x, t, g, lv):
        xx = x.detach().requires_grad_()
        return torch.autograd.grad(hash_grid_encode_torch(xx, t.float(), self.spec), xx, g)[0]

    @torch.enable_grad()
    def hash_grid_bwd_table(self, x, g, n_rows, n_features, lv):
        tt = torch.zeros(n_rows, n_features, requires_grad=True)
        return torch.autograd.grad(hash_grid_encode_torch(x, tt, self.spec), tt, g)[0]

    def bvh_build(self, v, f):
        return v, f, torch.zeros(0, dtype=torch.int32)

    def nearest_triangle(self, points, slots, nodes, tris, leaf_face, K, T, sort_by_slot):
        return nearest_triangle_torch(points, slots, nodes, tris)

    def march_rays(self, o, d, aabb, grid, dt, n_steps):
        return march_rays_torch(o, d, aabb, grid, dt, n_steps)

    def composite_fwd(self, sig, rgb, t0, t1, ri, R):
        out = composite_torch(sig, rgb, t0, t1, ri, R)
        return out["rgb"], out["opacity"], out["depth"], out["weights"], torch.searchsorted(ri, torch.arange(R + 1))

    @torch.enable_grad()
    def composite_bwd(self, sig, rgb, t0, t1, start, w, g_rgb, g_op, g_depth, g_w):
        R = start.shape[0] - 1
        ri = torch.repeat_interleave(torch.arange(R), start.diff())
        s, c = sig.detach().requires_grad_(), rgb.detach().requires_grad_()
        out = composite_torch(s, c, t0, t1, ri, R)
        pairs = [(out[k], g) for k, g in (("rgb", g_rgb), ("opacity", g_op), ("depth", g_depth), ("weights", g_w)) if g is not None]
        return torch.autograd.grad([o for o, _ in pairs], (s, c), [g for _, g in pairs])


def test_wrappers_autograd_plumbing_with_twin_kernels():
    spec = HashGridSpec(n_levels=3, n_features=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=1.5)
    ops = CudaOps(TwinKernels(spec))
    table = torch.randn(spec.n_params, 2, generator=_gen(0)).requires_grad_()
    x = torch.rand(64, 3, generator=_gen(1)).requires_grad_()
    g = torch.randn(64, 6, generator=_gen(2))
    for half in (False, True):
        ref_t = table.detach().half().float().requires_grad_() if half else table
        ref = hash_grid_encode_torch(x, ref_t, spec)
        out = ops.hash_grid_encode(x, table, spec, half=half)
        torch.testing.assert_close(out, ref)
        for a, b in zip(torch.autograd.grad(out, (x, table), g), torch.autograd.grad(ref, (x, ref_t), g)):
            torch.testing.assert_close(a, b)
    sig, rgb, t0, t1, ri = _packed(50, 3, "cpu")
    sig.requires_grad_()
    rgb.requires_grad_()
    bg = torch.rand(3, generator=_gen(4))
    for keys in (("rgb",), ("rgb", "opacity", "depth", "weights")):
        out, ref = ops.composite(sig, rgb, t0, t1, ri, 50, bg), composite_torch(sig, rgb, t0, t1, ri, 50, bg)
        cot = [torch.randn(ref[k].shape, generator=_gen(5)) for k in keys]
        for a, b in zip(torch.autograd.grad([out[k] for k in keys], (sig, rgb), cot),
                        torch.autograd.grad([ref[k] for k in keys], (sig, rgb), cot)):
            torch.testing.assert_close(a, b)
    o, d = _rays(40, 6, "cpu")
    aabb, grid = torch.tensor([-0.7, -0.6, -0.8, 0.65, 0.7, 0.6]), torch.rand(8, 8, 8, generator=_gen(7)) < 0.5
    for a, b in zip(ops.march_rays(o, d, aabb, grid, 0.01), march_rays_torch(o, d, aabb, grid, 0.01)):
        assert torch.equal(a, b)
    verts, faces = _meshes(1, K=2)
    pts, sl = torch.rand(30, 3, generator=_gen(8)) - 0.5, torch.randint(2, (30,), generator=_gen(9))
    for a, b in zip(ops.nearest_triangle(pts, sl, verts, faces), nearest_triangle_torch(pts, sl, verts, faces)):
        assert torch.equal(a, b)


def test_precision_options_on_cpu():
    """fp16 table reads round the table (gradient stays float32); bf16 MLPs are CUDA-only."""
    from fastminerf.model.field import RadianceField

    spec = HashGridSpec(n_levels=3, n_features=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=1.5)
    table = torch.randn(spec.n_params, 2, generator=_gen(0)).requires_grad_()
    x = torch.rand(50, 3, generator=_gen(1))
    out = hash_grid_encode(x, table, spec, precision="fp16")
    ref = hash_grid_encode_torch(x, table.detach().half().float(), spec)
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    (g,) = torch.autograd.grad(out.sum(), table)
    assert g.dtype == torch.float32
    with pytest.raises(ValueError, match="precision"):
        hash_grid_encode(x, table, spec, precision="fp8")
    with pytest.raises(ValueError, match="mlp_precision"):
        RadianceField(spec, mlp_precision="fp16")
    f = RadianceField(spec, mlp_precision="bf16")  # ignored on CPU tensors
    sigma, rgb = f(x, torch.nn.functional.normalize(torch.randn(50, 3, generator=_gen(2)), dim=-1))
    assert sigma.dtype == rgb.dtype == torch.float32


def test_hash_grid_state_is_backend_independent():
    """One parameter, [P, F] in tcnn's flat order, whatever the backend: a checkpoint
    saved under one backend loads under the others (CPU tensors run the torch twin)."""
    from fastminerf.model.field import HashGrid

    spec = HashGridSpec(n_levels=3, n_features=2, log2_hashmap_size=8, base_resolution=4, per_level_scale=1.5)
    grids = {b: HashGrid(spec, b) for b in ("torch", "cuda", "tcnn")}
    state = grids["torch"].state_dict()
    x = torch.rand(20, 3, generator=_gen(3))
    for b, grid in grids.items():
        assert {k: v.shape for k, v in grid.state_dict().items()} == {"table": (spec.n_params, 2)}, b
        grid.load_state_dict(state)
        torch.testing.assert_close(grid(x), grids["torch"](x), rtol=0, atol=0)


@GPU
@pytest.mark.skipif(importlib.util.find_spec("tinycudann") is None, reason="tinycudann is not installed (not on PyPI; build it from tiny-cuda-nn's bindings/torch)")
def test_tcnn_encoding_reads_our_table():
    from fastminerf.model.field import HashGrid

    spec = HashGridSpec(n_levels=8, n_features=2, log2_hashmap_size=15, base_resolution=16, per_level_scale=1.5)
    ours = HashGrid(spec, "torch").cuda()
    with torch.no_grad():
        ours.table.normal_(0, 0.1)
    tc = HashGrid(spec, "tcnn").cuda()
    tc.load_state_dict(ours.state_dict())  # one checkpoint layout for both
    x = torch.rand(4096, 3, device="cuda")
    a, b = ours(x), tc(x)
    err = (a - b).abs().max().item()
    print(f"tcnn vs torch twin: max |Δ| = {err:.2e} (tcnn reads fp16 parameters)")
    assert err < 2e-3
    g = torch.randn_like(a)
    (ga,) = torch.autograd.grad(a, ours.table, g)
    (gb,) = torch.autograd.grad(b, tc.table, g)
    torch.testing.assert_close(gb, ga, atol=2e-3, rtol=1e-2)


# ============================================================================ GPU: hash grid
SPECS = {
    "small": HashGridSpec(n_levels=4, n_features=2, log2_hashmap_size=10, base_resolution=4, per_level_scale=2.0),
    "insta": HashGridSpec.from_finest(16, 2, 19, 16, 2048),
    "tiny_cpu": HashGridSpec.from_finest(12, 2, 16, 8, 256),
}


def _grid_points(n: int, seed: int, device) -> torch.Tensor:
    x = torch.rand(n, 3, generator=_gen(seed))
    x[:8] = torch.tensor([0.0, 1.0, 0.5, 0.25, 1 / 3, 0.999999, 1e-7, 0.75])[:, None]  # corners, cell faces
    return x.to(device)


@GPU
@pytest.mark.parametrize("name", sorted(SPECS))
def test_hash_grid_rows_equal_exactly(ops, name):
    spec = SPECS[name]
    x = _grid_points(20000, 0, "cuda")
    rows, _, _ = grid_indices(x, spec)
    got = ops.hash_grid_rows(x, spec)
    assert got.shape == rows.shape
    bad = (got != rows).nonzero()
    assert bad.shape[0] == 0, f"{bad.shape[0]} rows differ, first (point, level, corner) {bad[:5].tolist()}"


@GPU
@pytest.mark.parametrize("F", [1, 2, 4, 8])
def test_hash_grid_forward_and_gradients(ops, F):
    spec = SPECS["insta"] if F == 2 else HashGridSpec.from_finest(8, F, 14, 8, 512)
    table = torch.randn(spec.n_params, F, generator=_gen(1)).mul_(0.1).cuda().requires_grad_()
    x = _grid_points(30000, 2, "cuda").requires_grad_()
    ref = hash_grid_encode_torch(x, table, spec)
    out = ops.hash_grid_encode(x, table, spec)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn(out.shape, generator=_gen(3)).cuda()
    rx, rt = torch.autograd.grad(ref, (x, table), g)
    gx, gt = torch.autograd.grad(out, (x, table), g)
    torch.testing.assert_close(gt, rt, atol=1e-5, rtol=1e-4)  # float atomics: order differs
    torch.testing.assert_close(gx, rx, atol=2e-3, rtol=1e-3)  # scaled by up to 2047 per level


@GPU
def test_hash_grid_fp16_table(ops):
    """fp16 reads: error vs fp32 small; table gradient independent of table precision."""
    spec = SPECS["insta"]
    table = (torch.randn(spec.n_params, 2, generator=_gen(4)) * 0.1).cuda().requires_grad_()
    x = _grid_points(50000, 5, "cuda")
    full = ops.hash_grid_encode(x, table, spec)
    half = ops.hash_grid_encode(x, table, spec, half=True)
    rel = ((half - full).abs().max() / full.abs().max()).item()
    print(f"fp16 hash table: max |Δ| / max |out| = {rel:.2e}")
    assert rel < 2e-3
    twin = hash_grid_encode(x, table, spec, backend="torch", precision="fp16")
    torch.testing.assert_close(half, twin, atol=1e-5, rtol=1e-5)
    g = torch.randn(full.shape, generator=_gen(6)).cuda()
    (g32,) = torch.autograd.grad(full, table, g)
    (g16,) = torch.autograd.grad(half, table, g)
    assert g16.dtype == torch.float32
    torch.testing.assert_close(g16, g32, atol=2e-5, rtol=1e-4)  # same sums, another atomic order


# ============================================================================ GPU: nearest triangle
def _meshes(subdivisions: int, K: int, seed: int = 0):
    import trimesh

    m = trimesh.creation.icosphere(subdivisions, radius=0.1)
    V = torch.tensor(m.vertices, dtype=torch.float32)
    F = torch.tensor(m.faces, dtype=torch.long)
    g = _gen(seed)
    verts = torch.stack([V * (1 + 0.2 * k) + 0.004 * torch.randn(V.shape, generator=g) for k in range(K)])
    return verts, F


def _check_nearest(points, slots, verts, faces, face, dist):
    f_ref, d_ref = nearest_triangle_torch(points, slots, verts, faces)
    torch.testing.assert_close(dist, d_ref, atol=1e-6, rtol=1e-5)
    other = face != f_ref
    if other.any():  # a tie (shared edge/vertex): our face must be as near as the twin's
        tri = verts[slots[other][:, None], faces[face[other]]]
        q = closest_point_on_triangle(points[other], tri[:, 0], tri[:, 1], tri[:, 2])
        torch.testing.assert_close((q - points[other]).norm(dim=-1), d_ref[other], atol=1e-6, rtol=1e-5)
    return other.float().mean().item()


@GPU
@pytest.mark.parametrize("subdivisions,n", [(3, 20000), (5, 4000)])
def test_nearest_triangle_matches_brute_force(ops, subdivisions, n):
    verts, faces = _meshes(subdivisions, K=4)
    verts, faces = verts.cuda(), faces.cuda()
    g = _gen(7)
    near = torch.nn.functional.normalize(torch.randn(n // 2, 3, generator=g), dim=-1) * (0.1 + 0.02 * torch.randn(n // 2, 1, generator=g))
    far = (torch.rand(n - n // 2, 3, generator=g) * 2 - 1) * 0.5  # inside, outside, far away
    points = torch.cat([near, far]).cuda()
    slots = torch.randint(4, (n,), generator=g).cuda()
    face, dist = ops.nearest_triangle(points, slots, verts, faces)
    assert face.dtype == torch.long and dist.dtype == torch.float32
    ties = _check_nearest(points, slots, verts, faces, face, dist)
    print(f"{ties:.1%} of points nearest to a shared edge got the neighbouring face (same distance)")
    # unsorted traversal gives the same answer
    face2, dist2 = ops.nearest_triangle(points, slots, verts, faces, sort_by_slot=False)
    assert torch.equal(face2, face) and torch.equal(dist2, dist)


@GPU
def test_nearest_triangle_edge_cases(ops):
    # one triangle (no internal node), and duplicated triangles (equal Morton codes): ties
    # go to the smaller face index
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]], device="cuda")
    p = torch.tensor([[0.2, 0.2, 1.0], [2.0, 0.0, 0.0], [-1.0, -1.0, -1.0]], device="cuda")
    s = torch.zeros(3, dtype=torch.long, device="cuda")
    face, dist = ops.nearest_triangle(p, s, tri, torch.tensor([[0, 1, 2]], device="cuda"))
    assert face.tolist() == [0, 0, 0]
    torch.testing.assert_close(dist, torch.tensor([1.0, 1.0, 3**0.5], device="cuda"))
    verts, faces = _meshes(2, K=2)
    dup = torch.cat([faces, faces]).cuda()
    pts = (torch.rand(3000, 3, generator=_gen(8)) - 0.5).mul(0.4).cuda()
    sl = torch.randint(2, (3000,), generator=_gen(9)).cuda()
    face, dist = ops.nearest_triangle(pts, sl, verts.cuda(), dup)
    assert int(face.max()) < faces.shape[0]  # the copy never wins a tie
    _check_nearest(pts, sl, verts.cuda(), dup, face, dist)


@GPU
def test_meshset_cuda_builds_once(ops):
    verts, faces = _meshes(3, K=3)
    ms = MeshSet(verts.cuda(), faces.cuda(), search="cuda")
    pts = (torch.rand(1000, 3, generator=_gen(10)) - 0.5).mul(0.5).cuda()
    sl = torch.randint(3, (1000,), generator=_gen(11)).cuda()
    f1, d1 = ms.nearest(pts, sl)
    bvh = ms._bvh
    f2, d2 = ms.nearest(pts, sl)
    assert ms._bvh is bvh and torch.equal(f1, f2) and torch.equal(d1, d2)
    _check_nearest(pts, sl, verts.cuda(), faces.cuda(), f1, d1)


def _hit_rays(n: int, seed: int):
    """Rays from outside the unit-ish spheres, aimed near them (hits, misses, grazing)."""
    g = _gen(seed)
    o = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=-1) * 0.5
    d = torch.nn.functional.normalize(torch.randn(n, 3, generator=g) * 0.08 - o, dim=-1)
    return o, d


def _check_first_hit(t, ref):
    assert torch.equal(torch.isfinite(t), torch.isfinite(ref))
    fin = torch.isfinite(ref)
    torch.testing.assert_close(t[fin], ref[fin], atol=1e-5, rtol=1e-5)


@GPU
def test_first_hit_matches_brute_force(ops):
    verts, faces = _meshes(3, K=3)
    o, d = _hit_rays(4000, 12)
    sl = torch.randint(3, (4000,), generator=_gen(13))
    ref = first_hit_torch(o, d, sl, verts, faces)
    t = ops.first_hit(o.cuda(), d.cuda(), sl.cuda(), verts.cuda(), faces.cuda())
    _check_first_hit(t.cpu(), ref)
    ms = MeshSet(verts.cuda(), faces.cuda(), search="cuda")
    _check_first_hit(ms.first_hit(o.cuda(), d.cuda(), sl.cuda()).cpu(), ref)


# ============================================================================ GPU: marching
def _rays(n: int, seed: int, device):
    g = _gen(seed)
    o = (torch.rand(n, 3, generator=g) * 2 - 1) * 1.5  # many outside the box, some inside
    target = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.6
    d = torch.nn.functional.normalize(target - o, dim=-1)
    d[:16] = torch.tensor([1.0, 0.0, 0.0])  # axis-aligned: zero components
    o[16:32] = torch.tensor([0.0, 5.0, 0.0])  # misses
    return o.to(device), d.to(device)


@GPU
@pytest.mark.parametrize("R,fill,max_steps", [(32, 0.3, None), (128, 0.05, None), (64, 0.5, 40), (16, 0.0, None)])
def test_march_matches_twin_exactly(ops, R, fill, max_steps):
    aabb = torch.tensor([-0.7, -0.6, -0.8, 0.65, 0.7, 0.6], device="cuda")
    grid = (torch.rand(R, R, R, generator=_gen(R)) < fill).cuda()
    o, d = _rays(5000, 12, "cuda")
    dt = float((aabb[3:] - aabb[:3]).norm()) / 300
    ri, t0, t1 = march_rays_torch(o, d, aabb, grid, dt, max_steps)
    ci, c0, c1 = ops.march_rays(o, d, aabb, grid, dt, max_steps)
    assert ci.shape == ri.shape, f"{ci.shape[0]} samples, twin {ri.shape[0]}"
    assert torch.equal(ci, ri) and torch.equal(c0, t0) and torch.equal(c1, t1)
    assert ci.dtype == torch.long and c0.dtype == torch.float32


# ============================================================================ GPU: compositing
def _packed(n_rays: int, seed: int, device):
    g = _gen(seed)
    counts = torch.randint(0, 40, (n_rays,), generator=g)
    counts[:5] = 0  # empty rays
    ri = torch.repeat_interleave(torch.arange(n_rays), counts)
    S = ri.shape[0]
    t0 = torch.rand(S, generator=g) * 2
    t0, _ = torch.sort(t0 + ri * 10.0)
    t0 = t0 - ri * 10.0
    t1 = t0 + 0.01 + 0.02 * torch.rand(S, generator=g)
    sig = torch.rand(S, generator=g) * 40
    sig[::7] = 0
    rgb = torch.rand(S, 3, generator=g)
    return [t.to(device) for t in (sig, rgb, t0, t1, ri)]


@GPU
@pytest.mark.parametrize("bg", ["none", "shared", "per_ray"])
def test_composite_matches_twin(ops, bg):
    R = 3000
    sig, rgb, t0, t1, ri = _packed(R, 13, "cuda")
    background = {"none": None, "shared": torch.rand(3, generator=_gen(1)).cuda(),
                  "per_ray": torch.rand(R, 3, generator=_gen(2)).cuda()}[bg]
    sig.requires_grad_()
    rgb.requires_grad_()
    ref = composite_torch(sig, rgb, t0, t1, ri, R, background)
    out = ops.composite(sig, rgb, t0, t1, ri, R, background)
    for k, tol in (("rgb", 1e-5), ("opacity", 1e-5), ("depth", 1e-4), ("weights", 1e-5)):
        torch.testing.assert_close(out[k], ref[k], atol=tol, rtol=1e-4, msg=lambda m, k=k: f"{k}: {m}")
    g = _gen(14)
    cot = [torch.randn(ref[k].shape, generator=g).cuda() for k in ("rgb", "opacity", "depth", "weights")]
    keys = ("rgb", "opacity", "depth", "weights")
    rs, rc = torch.autograd.grad([ref[k] for k in keys], (sig, rgb), cot)
    cs, cc = torch.autograd.grad([out[k] for k in keys], (sig, rgb), cot)
    torch.testing.assert_close(cc, rc, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(cs, rs, atol=1e-4, rtol=1e-3)
    # rgb-only loss (the training case): other cotangents are None in backward
    (cs2,) = torch.autograd.grad(ops.composite(sig, rgb, t0, t1, ri, R, background)["rgb"].sum(), sig)
    (rs2,) = torch.autograd.grad(composite_torch(sig, rgb, t0, t1, ri, R, background)["rgb"].sum(), sig)
    torch.testing.assert_close(cs2, rs2, atol=1e-4, rtol=1e-3)


@GPU
def test_composite_diverging_density_matches_twin(ops):
    """Huge and infinite σ: both compositors cap the optical depth the same way (values and
    σ gradients), and nothing becomes NaN."""
    R = 200
    sig, rgb, t0, t1, ri = _packed(R, 15, "cuda")
    sig = sig.clone()
    sig[::11] = 1e30
    sig[5::23] = float("inf")
    sig.requires_grad_()
    ref = composite_torch(sig, rgb, t0, t1, ri, R, None)
    out = ops.composite(sig, rgb, t0, t1, ri, R, None)
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=1e-5, rtol=1e-4)
    (cs,) = torch.autograd.grad(out["rgb"].sum(), sig)
    (rs,) = torch.autograd.grad(ref["rgb"].sum(), sig)
    assert torch.isfinite(cs).all() and torch.isfinite(rs).all()
    torch.testing.assert_close(cs, rs, atol=1e-4, rtol=1e-3)


@GPU
def test_composite_without_samples(ops):
    z = torch.zeros(0, device="cuda")
    out = ops.composite(z, torch.zeros(0, 3, device="cuda"), z, z, torch.zeros(0, dtype=torch.long, device="cuda"), 4,
                        torch.ones(3, device="cuda"))
    assert torch.equal(out["rgb"], torch.ones(4, 3, device="cuda")) and out["weights"].shape == (0,)


# ============================================================================ GPU: model, checkpoints, precision
@pytest.fixture(scope="module")
def cast_dir(tmp_path_factory):
    from fixtures import make_identity

    root = tmp_path_factory.mktemp("cast")
    for k in range(2):
        make_identity(root, f"id{k}", n_frames=6, size=32, subdivisions=3, colour=(200, 60 + 80 * k, 60))
    return root


SMALL = ["data.rays_per_batch=1024", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "render.occupancy_resolution=32"]


@GPU
def test_checkpoint_moves_between_backends(ops, cast_dir, tmp_path):
    """Train a few steps with the torch backend on the GPU, load the checkpoint with cuda
    (and back): same parameters, same images up to tie-breaks of the nearest triangle."""
    from fastminerf.api import load_avatar
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.model.frames import frames_from_cast
    from fastminerf.render.views import render_image
    from fastminerf.train.trainer import Trainer

    cfg = load_config("tiny_cpu", SMALL + ["train.steps=4", "train.backend=torch"])
    cast = load_cast([cast_dir])
    t = Trainer(cfg, cast, tmp_path / "run", device="cuda")
    assert t.avatar.backend == "torch"
    for _ in range(4):
        t.train_step()
    ckpt = t.save()
    images = {}
    for backend in ("cuda", "torch"):
        avatar, _ = load_avatar(ckpt, device="cuda", backend=backend)
        assert avatar.backend == backend
        fb = frames_from_cast(avatar, cast, np.array([0]), own_latents=True)
        c2h = torch.from_numpy(cast.cam_to_head[0])
        K = torch.from_numpy(cast.intrinsics[0])
        images[backend] = render_image(avatar, fb, c2h, K, cast.height, cast.width, torch.ones(3, device="cuda"))["rgb"]
    diff = (images["cuda"] - images["torch"]).abs()
    print(f"torch vs cuda render: max |Δ| {diff.max().item():.2e}, mean {diff.mean().item():.2e}")
    assert diff.mean() < 1e-3 and diff.max() < 2e-2


@GPU
@pytest.mark.parametrize("overrides", [[], ["model.grid_precision=fp16", "model.mlp_precision=bf16"]])
def test_cuda_training_steps(ops, cast_dir, tmp_path, overrides):
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.train.trainer import Trainer

    cfg = load_config("tiny_cpu", SMALL + ["train.steps=5", "train.backend=cuda", *overrides])
    t = Trainer(cfg, load_cast([cast_dir]), tmp_path / "run", device="cuda")
    assert t.avatar.backend == "cuda" and t.avatar.ops_backend == "cuda"
    stats = [t.train_step() for _ in range(5)]
    assert all(np.isfinite(s.loss) for s in stats) and all(s.n_samples > 0 for s in stats)


@GPU
def test_reduced_precision_error(ops):
    """Field outputs with fp16 table reads and bf16 MLPs vs float32, same weights."""
    from fastminerf.model.field import RadianceField

    spec = SPECS["insta"]
    torch.manual_seed(0)
    ref = RadianceField(spec, cond_density_dim=8, cond_color_dim=8, backend="cuda").cuda()
    with torch.no_grad():
        ref.grid.table.normal_(0, 0.05)
    x = torch.rand(65536, 3, device="cuda")
    d = torch.nn.functional.normalize(torch.randn(65536, 3, device="cuda"), dim=-1)
    cond = torch.randn(4, 8, device="cuda")
    rows = torch.randint(4, (65536,), device="cuda")
    with torch.no_grad():
        s0, c0 = ref(x, d, cond, rows, cond, rows)
        errs = {}
        for gp, mp in (("fp16", "fp32"), ("fp32", "bf16"), ("fp16", "bf16")):
            ref.grid.precision, ref.mlp_precision = gp, mp
            s, c = ref(x, d, cond, rows, cond, rows)
            errs[f"grid {gp} / mlp {mp}"] = (((s - s0).abs() / s0.abs().clamp_min(1e-3)).median().item(),
                                             (c - c0).abs().max().item())
        ref.grid.precision, ref.mlp_precision = "fp32", "fp32"
    for k, (es, ec) in errs.items():
        print(f"{k}: median rel σ error {es:.1e}, max colour error {ec:.1e}")
    assert errs["grid fp16 / mlp fp32"][0] < 1e-3 and errs["grid fp16 / mlp fp32"][1] < 1e-3
    assert errs["grid fp32 / mlp bf16"][0] < 3e-2 and errs["grid fp32 / mlp bf16"][1] < 3e-2
