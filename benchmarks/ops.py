"""Per-op throughput, our CUDA kernels vs the torch twins on the same device.

    python benchmarks/ops.py                      # GPU if present, else CPU (cuda rows "unavailable")
    python benchmarks/ops.py --out DIR --quick

Ops: hash-grid encode (forward; forward + backward to the table), nearest triangle (K
meshes; the torch backend's real path is the warp-lang CPU BVH, timed as "torch"), ray
marching (occupancy grid), compositing (forward + backward). Throughput is millions of
items (points, samples or rays) per second. On a GPU the script also probes nerfacc's
packed CUDA ops: whether its extension builds here, and if so how fast its packed
compositing runs (nerfacc 0.5.3's extension does not compile against torch >= 2.12).
Writes ops-<cpu|cuda>.json/.md into benchmarks/results/ (or --out).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fastminerf.ops import _backend  # noqa: E402
from fastminerf.ops.composite import composite_torch  # noqa: E402
from fastminerf.ops.embed import MeshSet  # noqa: E402
from fastminerf.ops.hashgrid import HashGridSpec, hash_grid_encode_torch  # noqa: E402
from fastminerf.ops.march import march_rays_torch  # noqa: E402

from common import RESULTS, environment, md_table, pick_device, sphere, timeit, write_results  # noqa: E402


def sizes(device: torch.device, quick: bool) -> dict:
    if device.type == "cuda":
        return dict(points=1 << 18, rays=1 << 14, meshes=64, subdivisions=5, grid=128, steps=1024)
    if quick:
        return dict(points=1 << 13, rays=1 << 10, meshes=8, subdivisions=3, grid=64, steps=192)
    return dict(points=1 << 15, rays=1 << 12, meshes=16, subdivisions=4, grid=64, steps=256)


def cases(device: torch.device, sz: dict, ops):
    """(op, items, unit, {backend: callable}) per benchmarked op."""
    g = torch.Generator().manual_seed(0)
    N, R = sz["points"], sz["rays"]
    spec = HashGridSpec.from_finest(16, 2, 19, 16, 2048)
    table = (torch.randn(spec.n_params, 2, generator=g) * 0.1).to(device).requires_grad_()
    x = torch.rand(N, 3, generator=g).to(device)
    gout = torch.randn(N, spec.out_dim, generator=g).to(device)

    def hash_fwd(fn):
        return lambda: fn(x, table.detach())

    def hash_fwd_bwd(fn):
        return lambda: torch.autograd.grad(fn(x, table), table, gout)

    twin = lambda x_, t_: hash_grid_encode_torch(x_, t_, spec)  # noqa: E731
    yield "hash_grid forward (16 lvl, 2^19)", N, "points", {"torch": hash_fwd(twin)} | (
        {"cuda": hash_fwd(lambda a, b: ops.hash_grid_encode(a, b, spec)),
         "cuda fp16 table": hash_fwd(lambda a, b: ops.hash_grid_encode(a, b, spec, half=True))} if ops else {})
    yield "hash_grid forward+backward", N, "points", {"torch": hash_fwd_bwd(twin)} | (
        {"cuda": hash_fwd_bwd(lambda a, b: ops.hash_grid_encode(a, b, spec)),
         "cuda fp16 table": hash_fwd_bwd(lambda a, b: ops.hash_grid_encode(a, b, spec, half=True))} if ops else {})

    v, f = sphere(sz["subdivisions"])
    K = sz["meshes"]
    V = torch.from_numpy(v)
    verts = torch.stack([V * (1 + 0.1 * torch.rand(1, generator=g)) for _ in range(K)]).to(device)
    faces = torch.from_numpy(f).long().to(device)
    pts = (torch.randn(N, 3, generator=g) * 0.06 + torch.nn.functional.normalize(torch.randn(N, 3, generator=g), dim=-1) * 0.1).to(device)
    slots = torch.randint(K, (N,), generator=g).to(device)
    label = f"nearest triangle ({K} meshes x {len(f)} faces)"
    runs = {"torch": lambda: MeshSet(verts, faces, search="warp").nearest(pts, slots)}
    if ops:
        runs["cuda (build + query)"] = lambda: ops.nearest_triangle(pts, slots, verts, faces)
        bvh = ops.build_bvh(verts, faces)
        runs["cuda (query, cached BVH)"] = lambda: ops.nearest_triangle(pts, slots, verts, faces, bvh=bvh)
    yield label, N, "points", runs

    aabb = torch.tensor([-0.15, -0.15, -0.15, 0.15, 0.15, 0.15], device=device)
    Rg = sz["grid"]
    c = (torch.stack(torch.meshgrid(*[torch.arange(Rg)] * 3, indexing="ij"), -1).float() + 0.5) / Rg * 0.3 - 0.15
    grid = ((c.norm(dim=-1) - 0.1).abs() < 0.02).to(device)  # a shell around the head sphere
    o = torch.tensor([0.0, 0.0, 0.5]).expand(R, 3).contiguous().to(device)
    tgt = (torch.rand(R, 3, generator=g) * 0.3 - 0.15).to(device)
    d = torch.nn.functional.normalize(tgt - o, dim=-1)
    dt = float((aabb[3:] - aabb[:3]).norm()) / sz["steps"]
    runs = {"torch": lambda: march_rays_torch(o, d, aabb, grid, dt)}
    if ops:
        runs["cuda"] = lambda: ops.march_rays(o, d, aabb, grid, dt)
    yield f"march ({Rg}^3 grid, {sz['steps']} steps)", R, "rays", runs

    ri, t0, t1 = march_rays_torch(o, d, aabb, grid, dt)
    S = ri.shape[0]
    sig = (torch.rand(S, generator=g) * 50).to(device).requires_grad_()
    rgb = torch.rand(S, 3, generator=g).to(device).requires_grad_()
    bg = torch.ones(3, device=device)

    def comp(fn):
        return lambda: torch.autograd.grad(fn(sig, rgb, t0, t1, ri, R, bg)["rgb"].sum(), (sig, rgb))

    runs = {"torch": comp(composite_torch)}
    if ops:
        runs["cuda"] = comp(ops.composite)
    yield f"composite forward+backward ({S} samples)", S, "samples", runs


NERFACC_PROBE = r"""
import json, sys, time, torch
out = {"installed": False, "built": False}
try:
    import nerfacc
    out["installed"], out["version"] = True, nerfacc.__version__
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"; print(json.dumps(out)); sys.exit(0)
try:
    t0 = time.perf_counter()
    from nerfacc.cuda._backend import _C  # JIT-builds nerfacc's extension on import when no prebuilt one exists
    if _C is None:
        raise RuntimeError("nerfacc.cuda._backend._C is None (extension failed to build)")
    out["build_seconds"] = round(time.perf_counter() - t0, 1)
    S, R = int(sys.argv[1]), int(sys.argv[2])
    g = torch.Generator().manual_seed(0)
    ri = torch.sort(torch.randint(R, (S,), generator=g)).values.cuda()
    ts = torch.rand(S, generator=g).cuda(); te = ts + 0.01
    sig = (torch.rand(S, generator=g) * 50).cuda().requires_grad_(); rgb = torch.rand(S, 3, generator=g).cuda().requires_grad_()
    def run():
        w, _, _ = nerfacc.render_weight_from_density(ts, te, sig, ray_indices=ri, n_rays=R)
        c = nerfacc.accumulate_along_rays(w, rgb, ray_indices=ri, n_rays=R)
        torch.autograd.grad(c.sum(), (sig, rgb))
    for _ in range(3): run()
    torch.cuda.synchronize(); t0 = time.perf_counter()
    for _ in range(10): run()
    torch.cuda.synchronize()
    out["built"] = True
    out["composite_fwd_bwd_msamples_per_s"] = round(S * 10 / (time.perf_counter() - t0) / 1e6, 2)
except Exception as e:
    out["error"] = f"{type(e).__name__}: {str(e)[-800:]}"
print(json.dumps(out))
"""


def probe_nerfacc(device: torch.device, S: int, R: int, timeout: int) -> dict:
    """Does nerfacc's packed CUDA code build and run here? (subprocess, time-limited)"""
    if device.type != "cuda":
        return {"status": "not probed: needs a CUDA device"}
    t0 = time.perf_counter()
    try:
        r = subprocess.run([sys.executable, "-c", NERFACC_PROBE, str(S), str(R)], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"build/run exceeded {timeout} s"}
    try:
        res = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        res = {"error": (r.stderr or r.stdout)[-800:]}
    res["seconds"] = round(time.perf_counter() - t0, 1)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for ops-<device>.json/.md")
    ap.add_argument("--quick", action="store_true", help="smaller CPU sizes")
    ap.add_argument("--nerfacc-timeout", type=int, default=240, help="seconds allowed for nerfacc's JIT build + run")
    args = ap.parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(0)
    ops, why = None, ""
    if device.type == "cuda":
        try:
            ops = _backend.cuda_ops()
        except RuntimeError as e:
            why = str(e)
    else:
        why = "needs a CUDA device"
    sz = sizes(device, args.quick)
    rows = []
    for op, items, unit, runs in cases(device, sz, ops):
        for backend, fn in runs.items():
            sec = timeit(fn, device, warmup=2, iters=5 if device.type == "cuda" else 3)
            rows.append({"op": op, "backend": backend, "items": items, "unit": unit, "ms": sec * 1e3,
                         "M/s": items / sec / 1e6})
            print(f"{op:45s} {backend:26s} {sec * 1e3:10.2f} ms  {items / sec / 1e6:9.2f} M {unit}/s", flush=True)
        if ops is None:
            rows.append({"op": op, "backend": "cuda", "items": items, "unit": unit, "ms": None, "M/s": None,
                         "status": f"unavailable ({why})"})
        else:
            base = next(r for r in rows if r["op"] == op and r["backend"] == "torch")
            for r in rows:
                if r["op"] == op and r["backend"] != "torch" and r.get("ms"):
                    r["speedup vs torch"] = base["ms"] / r["ms"]
    nerfacc = probe_nerfacc(device, 1 << 20, 1 << 14, args.nerfacc_timeout)
    print("nerfacc:", json.dumps(nerfacc))
    env = environment(device)
    payload = {"environment": env, "sizes": sz, "rows": rows, "nerfacc": nerfacc}
    md = [f"# Op throughput on {env['device']}", "", f"`{env['command']}` — torch {env['torch']}, CUDA {env['cuda']}, "
          f"commit {env['git_commit']}, {env['date']}, 1-min load average {env['load_average'][0]}", "",
          "Throughput in millions of items per second (items = the unit column). \"torch\" for nearest triangle is the "
          "torch backend's real path (warp-lang BVH on the CPU).", "",
          md_table(rows, ["op", "backend", "items", "unit", "ms", "M/s", "speedup vs torch", "status"]), "",
          "## nerfacc packed ops", "", "```json", json.dumps(nerfacc, indent=1), "```", ""]
    for p in write_results(args.out, f"ops-{device.type}", payload, "\n".join(md)):
        print("wrote", p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
