"""Data-parallel training with 2 gloo ranks on CPU (spawned by torchrun from the test): identical
parameters, 2 ranks × B rays = 1 process × 2B of the same rays, each rank reads only its shard,
a killed rank stops the job with one line and a loadable checkpoint, resume from 2 ranks to 1."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from fastminerf.config import load_config
from fastminerf.data.cast import load_cast
from fastminerf.model.checkpoint import latest_checkpoint, load_checkpoint
from fastminerf.model.loading import load_avatar
from fastminerf.train.distributed import rank_share, shard_paths
from fastminerf.train.trainer import Trainer, prepare_trainer

from fixtures import make_identity

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["data.rays_per_batch=128", "data.frames_per_batch=4", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "render.occupancy_resolution=32", "train.threads=1",
         "train.expression_dropout=0", "render.background=white"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "FASTMINERF_DIST_TIMEOUT": "30"}


def torchrun(*args, timeout=120):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *map(str, args)]
    res = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


@pytest.fixture(scope="module")
def cast_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cast")
    for k in range(4):
        make_identity(root, f"id{k}", n_frames=6, size=32, seed=k, colour=(200, 60 + 50 * k, 60))
    load_cast([root])  # builds the caches once; the ranks then only open them
    return root


@pytest.fixture(scope="module")
def three_steps(cast_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("steps")
    torchrun(ROOT / "tests/distributed_worker.py", "steps", out, cast_dir, *SMALL)
    return out


def test_parameters_identical_on_all_ranks(three_steps):
    a, b = (torch.load(three_steps / f"rank{r}.pt")["model"] for r in range(2))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_each_rank_reads_only_its_identities(three_steps, cast_dir):
    for r in range(2):
        rec = json.loads((three_steps / f"rank{r}.json").read_text())
        mine = [p.name for p in shard_paths([cast_dir], r, 2)]
        assert rec["names"] == mine == [f"id{2 * r}", f"id{2 * r + 1}"]
        touched = {Path(p).relative_to(cast_dir).parts[0] for p in rec["opened"] if Path(p).is_relative_to(cast_dir)}
        assert touched == set(mine), rec["opened"]
        assert rec["bytes_per_step"] > 0
        assert rec["share"] == 1.0  # 2 of 4 identities on each of 2 ranks


def test_uneven_shards_weigh_gradients_by_identities():
    """3 identities on 2 ranks: the rank with 2 counts double, so each identity weighs 1/3 as in
    one process (without it the lone identity got half of every step: −0.44 dB held-out on the
    demo cast, benchmarks/results/distributed-quality-cpu.md)."""
    shares = [rank_share(2, 3, 2), rank_share(1, 3, 2)]
    assert shares == pytest.approx([4 / 3, 2 / 3])
    assert sum(shares) / 2 == pytest.approx(1.0)  # the average over ranks keeps the loss scale


def test_merged_cast_info_matches_one_process(three_steps, cast_dir):
    merged = torch.load(three_steps / "rank0.pt")["cast"]
    from fastminerf.model.cast_info import CastInfo
    whole = CastInfo.from_cast(load_cast([cast_dir]), load_config("tiny_cpu").model.aabb_margin)
    m = CastInfo.from_dict(merged)
    assert m.names == whole.names and m.frames_per_identity == whole.frames_per_identity
    for k in ("canonical", "head_aabb", "canonical_aabb", "expr_mean", "expr_std"):
        np.testing.assert_allclose(getattr(m, k), getattr(whole, k), rtol=1e-4, atol=1e-5, err_msg=k)


def test_two_ranks_times_b_equal_one_process_times_2b(three_steps, cast_dir, tmp_path):
    """Same rays: rank r gets B rays from 2 frames of its identities, one process all 2B. The
    all-reduced gradients equal the single process's to fp32 summation error (rtol 1e-4, atol
    1e-6·max|g|). (Per-frame code regularisers are means over each rank's frames, so the
    equality is exact when ranks hold equal frame counts, as here.)"""
    cfg = load_config("tiny_cpu", SMALL)
    start = torch.load(three_steps / "rank0.pt")
    one = Trainer(cfg, load_cast([cast_dir]), tmp_path / "one", init=start)
    one.batcher.B, one.batcher.frames_per_batch = 4096, 16
    big = one.batcher.sample()
    B = 32
    off = one.cast.frame_offset
    picks = []
    for r in range(2):  # B rays from 2 frames (one per identity) of rank r's identities
        sel = []
        for k in (2 * r, 2 * r + 1):
            f = int(big.frame[big.identity == k][0])
            sel.append(torch.nonzero(big.frame == f)[: B // 2, 0])
        sel = torch.cat(sel)
        assert len(sel) == B
        picks.append(sel)
        part = {k: getattr(big, k)[sel].clone() for k in ("origins", "directions", "identity", "frame", "rgba", "xy")}
        part["identity"] -= 2 * r
        part["frame"] -= int(off[2 * r])
        torch.save(part, tmp_path / f"batch{r}.pt")
    torch.save(one.avatar.state_dict(), tmp_path / "start.pt")
    torchrun(ROOT / "tests/distributed_worker.py", "equiv", tmp_path, cast_dir, *SMALL)
    sel = torch.cat(picks)
    one.batcher.sample = lambda: type(big)(**{k: getattr(big, k)[sel] for k in ("origins", "directions", "identity", "frame", "rgba", "xy")})
    one.train_step()
    mine = [p.grad for g in one.opt.param_groups for p in g["params"]]
    for r in range(2):
        theirs = torch.load(tmp_path / f"grads{r}.pt")
        assert len(theirs) == len(mine)
        for a, b in zip(theirs, mine):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6 * float(b.abs().max()) + 1e-12)


def _rank_pid(parent: int, local_rank: int) -> int | None:
    for child in Path(f"/proc/{parent}/task/{parent}/children").read_text().split():
        try:
            env = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LOCAL_RANK={local_rank}".encode() in env:
            return int(child)
    return None


def test_killed_rank_stops_job_then_resume_on_one_rank(cast_dir, tmp_path):
    cmd = [sys.executable, "-m", "fastminerf", "train", "--nproc", "2", "--identities", str(cast_dir),
           "--out", str(tmp_path), "--quiet", *[a for s in SMALL + ["train.steps=100000", "train.save_every=2"]
                                                 for a in ("--set", s)]]
    proc = subprocess.Popen(cmd, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 90
        while not list(tmp_path.rglob("step-*.ckpt")):
            assert time.time() < deadline and proc.poll() is None, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        pid = _rank_pid(proc.pid, 1)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1
    assert err.strip().splitlines()[-1].startswith("error: distributed training stopped: rank 1"), err[-2000:]
    run_dir = next(tmp_path.rglob("checkpoints")).parent
    ckpt = latest_checkpoint(run_dir)
    avatar, _ = load_avatar(ckpt)  # eval/render load a distributed checkpoint unchanged
    assert avatar.info.names == [f"id{k}" for k in range(4)]
    step = load_checkpoint(ckpt)["step"]
    one = prepare_trainer(load_config("tiny_cpu"), [cast_dir], resume=ckpt)  # 2 ranks → 1 process
    assert one.step == step
    one.train_step()
    assert one.step == step + 1


def test_nproc_run_ends_together_on_rank_0s_clock_with_pooled_metrics(cast_dir, tmp_path):
    """train.max_minutes: rank 0's clock stops every rank at the same step (no hang); the final
    held-out metrics pool all 4 identities; the run folder is a normal one."""
    cmd = [sys.executable, "-m", "fastminerf", "train", "--nproc", "2", "--identities", str(cast_dir), "--out",
           str(tmp_path), "--quiet", *[a for s in SMALL + ["train.steps=100000", "train.max_minutes=0.0001"]
                                       for a in ("--set", s)]]
    res = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "backend gloo, 2 ranks" in res.stderr and "final held-out metrics" in res.stdout
    run_dir = next(tmp_path.rglob("metrics.json")).parent
    m = json.loads((run_dir / "metrics.json").read_text())
    assert sorted(m["per_identity"]) == [f"id{k}" for k in range(4)] and m["step"] < 100000
    assert load_checkpoint(run_dir)["step"] == m["step"]
