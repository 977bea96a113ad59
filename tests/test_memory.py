"""Caches bounded in bytes: the BVH cache honours its cap, and eviction changes no result."""
import logging

import numpy as np
import pytest
import torch

from fastminerf.config import load_config
from fastminerf.memory import ByteLRU, MiB, available_bytes, default_cache_bytes
from fastminerf.ops.embed import MeshSet, mesh_bytes, mesh_cache, nearest_triangle_torch, set_mesh_cache_bytes
from fastminerf.train.trainer import cap_mesh_cache, train

from fixtures import make_identity, sphere


@pytest.fixture
def restore_cache():
    cache = mesh_cache()
    cap = cache.capacity
    yield cache
    cache.clear()
    set_mesh_cache_bytes(cap)


def test_byte_lru_evicts_least_recently_used_by_bytes():
    c = ByteLRU(100)
    c.put("a", 1, 40)
    c.put("b", 2, 40)
    assert c.get("a") == 1  # "a" is now the most recently used
    c.put("c", 3, 40)  # 120 > 100: "b" goes
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3 and c.nbytes == 80
    c.put("huge", 4, 101)  # larger than the whole cap: not stored, nothing evicted
    assert "huge" not in c and len(c) == 2
    c.resize(50)
    assert list(c._items) == ["c"] and c.nbytes == 40 and c.evictions == 2
    c.resize(0)
    assert len(c) == 0 and c.nbytes == 0


def test_available_memory_reads_meminfo_and_cgroup(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 8000000 kB\nMemFree: 100 kB\nMemAvailable: 4000000 kB\n")
    cg = tmp_path / "cg"
    cg.mkdir()
    (cg / "memory.max").write_text("max\n")
    assert available_bytes(tmp_path / "meminfo", cg) == 4000000 * 1024
    (cg / "memory.max").write_text(str(3 << 30))
    (cg / "memory.current").write_text(str(1 << 30))
    assert available_bytes(tmp_path / "meminfo", cg) == 2 << 30  # the cgroup leaves less
    assert default_cache_bytes(2 << 30) == (2 << 30) // 4
    assert default_cache_bytes(1 << 40) == 4096 * MiB  # capped
    assert available_bytes(tmp_path / "none", tmp_path / "none") is None


def test_mesh_cache_honours_its_byte_cap_and_eviction_changes_nothing(restore_cache):
    v, f = sphere(subdivisions=3)
    F = torch.from_numpy(f).long()
    K = 24
    scale = 1 + 0.02 * torch.arange(K, dtype=torch.float32)[:, None, None]
    verts = torch.from_numpy(v)[None] * scale  # K distinct frames of one topology
    per = mesh_bytes(v.shape[0], f.shape[0])
    g = torch.Generator().manual_seed(0)
    results = {}
    for cap in (10**12, int(2.5 * per)):  # unbounded vs room for 2 meshes
        restore_cache.clear()
        set_mesh_cache_bytes(cap)
        out = []
        for _rep in range(2):  # the second pass hits the cache (or rebuilds evicted meshes)
            for k0 in range(0, K, 4):
                gk = torch.Generator().manual_seed(k0)
                pts = torch.randn(500, 3, generator=gk) * 0.12
                slots = torch.randint(4, (500,), generator=gk)
                keys = [("test", k) for k in range(k0, k0 + 4)]
                out.append(MeshSet(verts[k0:k0 + 4], F, keys=keys, search="warp").nearest(pts, slots))
                assert restore_cache.nbytes <= cap and restore_cache.nbytes == per * len(restore_cache)
        results[cap] = out
        if cap < 10**12:
            assert len(restore_cache) == 2 and restore_cache.evictions > 0
    for (fa, da), (fb, db) in zip(*results.values()):
        assert torch.equal(fa, fb) and torch.equal(da, db)
    pts = torch.randn(300, 3, generator=g) * 0.12
    slots = torch.randint(4, (300,), generator=g)
    _, d_ref = nearest_triangle_torch(pts, slots, verts[:4], F)
    _, d = MeshSet(verts[:4], F, keys=[("test", k) for k in range(4)], search="warp").nearest(pts, slots)
    torch.testing.assert_close(d, d_ref, atol=1e-6, rtol=0)


def test_mesh_bytes_counts_warp_allocations():
    # ICT-FaceKit: 26,719 vertices, ~53k triangles -> ~6.3 MB (the issue measured ~4.7 MB of RSS)
    assert 5.5 * MiB < mesh_bytes(26719, 53000) < 6.5 * MiB


def test_training_logs_the_cap_and_a_tiny_cap_gives_identical_weights(tmp_path, restore_cache, caplog):
    root = tmp_path / "cast"
    for k in range(2):
        make_identity(root, f"id{k}", n_frames=6, size=32, subdivisions=2, colour=(200, 60 + 80 * k, 60))
    small = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
             "train.steps=3", "render.occupancy_resolution=32", "train.final_eval_frames=1", "train.threads=1"]
    states = []
    for cap in ("null", "0.05"):  # default (from available memory) vs ~2 meshes of this cast
        restore_cache.clear()
        cap_mesh_cache.__dict__.pop("announced", None)
        with caplog.at_level(logging.INFO, logger="fastminerf.train.trainer"):
            run_dir, _ = train(load_config("tiny_cpu", small + [f"train.mesh_cache_mb={cap}"]), [root],
                               tmp_path / cap, progress=False)
        line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("cache: BVH ≤")]
        assert len(line) == 1, line
        caplog.clear()
        states.append(torch.load(next((run_dir / "checkpoints").iterdir()), weights_only=True)["model"])
        if cap != "null":
            assert restore_cache.nbytes <= 0.05 * MiB and restore_cache.evictions > 0
    for k in states[0]:
        assert torch.equal(states[0][k], states[1][k]), k
    assert np.isfinite(float(next(iter(states[0].values())).float().sum()))


def test_memory_benchmark_micro_run(tmp_path):
    """benchmarks/memory.py end to end on a micro cast: result files, the cap line, RSS samples."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "benchmarks" / "memory.py"), "--identities", "1", "--frames", "12",
                        "--subdivisions", "2", "--steps", "20", "--sample-every", "5", "--warmup", "5", "--cap", "1",
                        "--speed-caps", "0", "--speed-steps", "6", "--work", str(tmp_path), "--out", str(tmp_path)],
                       capture_output=True, text=True, timeout=300, cwd=root)
    assert r.returncode in (0, 1), r.stderr
    res = json.loads((tmp_path / "memory.json").read_text())["results"]
    assert res["long"]["cache_line"] == "cache: BVH ≤ 1 MB (train.mesh_cache_mb)"
    assert [s["step"] for s in res["long"]["samples"]] == [5, 10, 15, 20]
    assert all(s["cache_mb"] <= 1 for s in res["long"]["samples"]) and res["speed"][0]["samples"][-1]["cached"] == 0
    assert "RSS over 20 steps" in (tmp_path / "memory.md").read_text()
