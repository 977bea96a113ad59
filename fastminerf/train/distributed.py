"""Data-parallel training on torch.distributed (launched by ``torchrun`` or ``train --nproc N``).

Each rank loads only its contiguous block of identities (``shard_paths``: rank r of W gets
``array_split(identities, W)[r]``) and draws its rays there. The model is replicated: after
every backward pass all gradients (hash grid, MLPs, conditioning, identity and latent codes)
and the loss are averaged with ONE flat ``all_reduce`` (:meth:`DistributedTrainer.reduce_gradients`),
so every rank takes the same Adam step and the parameters stay identical; a code row that
only its owner rank touched gets ``grad/W`` — exactly the gradient of the mean loss over all
ranks' rays, i.e. W ranks × B rays = one process × W·B of the same rays. Occupancy grids are
merged with ``all_reduce(MAX)`` after init and after each refresh. Rank 0 writes checkpoints
(atomically, the same format as one process: eval/render/preview load them unchanged);
``--resume`` works with any number of ranks (each rank re-seeds its ray stream from
(seed, rank, step)). A dead rank makes the others fail within the collective timeout, and
they stop with one line.
"""
from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from ..config import Config
from ..data.cast import expand_identity_paths, load_cast
from ..errors import FastMinerfError, InputError
from ..eval.mouth import mean_of
from ..model.avatar import TrainingContext
from ..model.cast_info import EXPR_STD_FLOOR, CastInfo, canonical_box
from ..model.checkpoint import load_checkpoint
from ..model.occupancy import OccupancyGrid
from ..ops.cpu import tune_allocator
from .trainer import Trainer, run_dir_for

#: seconds a collective waits for a silent rank before the job stops (a killed rank usually
#: closes its sockets, and the others fail at once)
TIMEOUT_S = float(os.environ.get("FASTMINERF_DIST_TIMEOUT", 120))


class RankFailed(FastMinerfError):
    """Another rank of a distributed run died or stopped answering."""

    exit_code = 1


def launched() -> bool:
    """True inside a process started by torchrun (or ``train --nproc``) with WORLD_SIZE > 1."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def shard_paths(paths: list, rank: int, world: int) -> list[Path]:
    """Rank ``rank``'s contiguous block of the expanded identity folders (order kept)."""
    dirs = expand_identity_paths(paths)
    if len(dirs) < world:
        raise InputError(None, f"{len(dirs)} identities for {world} ranks (each rank needs at least one)")
    return [dirs[i] for i in np.array_split(np.arange(len(dirs)), world)[rank]]


def merge_infos(parts: list[CastInfo], margin: float, train_counts: list[int]) -> CastInfo:
    """One CastInfo from the ranks' shard CastInfos (in rank order): names/frames/roots/neutral
    meshes concatenated, canonical = mean of the neutral meshes (as :func:`load_cast`), boxes
    united (margin re-applied to the union), expression statistics pooled by training frames."""
    first = parts[0]
    ident = np.concatenate([p.identity_canonicals for p in parts])
    canonical = ident.mean(0).astype(np.float32)

    def raw(box):  # undo _box's pad: width = (1 + 2m)·extent on the widest axis
        pad = margin * (box[3:] - box[:3]).max() / (1 + 2 * margin)
        return box[:3] + pad, box[3:] - pad

    lo = np.min([raw(p.head_aabb)[0] for p in parts], 0)
    hi = np.max([raw(p.head_aabb)[1] for p in parts], 0)
    pad = margin * (hi - lo).max()
    n = np.asarray(train_counts, np.float64)[:, None]
    mu = np.stack([p.expr_mean for p in parts]).astype(np.float64)
    var = np.stack([p.expr_std for p in parts]).astype(np.float64) ** 2
    mean = (n * mu).sum(0) / n.sum()
    std = np.sqrt(np.maximum((n * (var + mu**2)).sum(0) / n.sum() - mean**2, 0))
    widest = max(parts, key=lambda p: p.mouth_open_amount)
    return CastInfo(
        names=[x for p in parts for x in p.names], frames_per_identity=[x for p in parts for x in p.frames_per_identity],
        identity_roots=[x for p in parts for x in p.identity_roots], expression_names=first.expression_names,
        canonical=canonical, faces=first.faces, face_regions=first.face_regions,
        head_aabb=np.concatenate([lo - pad, hi + pad]).astype(np.float32),
        canonical_aabb=canonical_box(canonical, widest.mouth_open, margin),
        expr_mean=mean.astype(np.float32), expr_std=np.maximum(std, EXPR_STD_FLOOR).astype(np.float32),
        expression_basis=next((p.expression_basis for p in parts if p.expression_basis is not None), None),
        identity_canonicals=ident, mouth_open=widest.mouth_open, mouth_open_amount=widest.mouth_open_amount)


def merge_occupancy(occ: OccupancyGrid) -> None:
    """Every rank's grid becomes the cell-wise max (densities) / union (masks) of all ranks'."""
    dist.all_reduce(occ.density, op=dist.ReduceOp.MAX)
    for name in ("bitfield", "candidate_mask"):
        t = getattr(occ, name)
        u = t.to(torch.uint8)
        dist.all_reduce(u, op=dist.ReduceOp.MAX)
        t.copy_(u.bool())


class DistributedTrainer(Trainer):
    """A :class:`Trainer` on one rank's shard; same loop, synchronised gradients and grids.

    Attributes:
        rank, world: this process's rank and the number of ranks.
        share: this rank's weight in the gradient average = its identities ÷ the cast's × ranks
            (1 when the identities split evenly). One process draws rays identity-uniformly,
            so a rank holding 2 of 3 identities must count double the one holding 1.
        bytes_per_step: bytes all-reduced per step (gradients + loss, fp32).
        comm_seconds: total time spent in the gradient all-reduce.
    """

    def __init__(self, cfg: Config, cast, run_dir: Path, *, device=None, resume: dict | None = None,
                 info: CastInfo | None = None):
        self.rank, self.world = dist.get_rank(), dist.get_world_size()
        super().__init__(cfg, cast, run_dir, device=device, init=resume, info=info)
        if resume is not None:  # init= loaded the weights; the rest of the run's state:
            self.opt.load_state_dict(resume["optimizer"])
            self.sched.load_state_dict(resume["scheduler"])
            self.step = int(resume["step"])
        seed = self.cfg.train.seed + 7919 * self.rank + 104729 * self.step * (self.rank > 0 or resume is not None)
        if self.rank > 0 or resume is not None:  # rank 0 of a new run draws exactly what one process would
            self.batcher.gen.manual_seed(seed)
            self.gen.manual_seed(seed + 1)
        with torch.no_grad():
            for t in list(self.avatar.parameters()) + list(self.avatar.buffers()):
                dist.broadcast(t.data, 0)  # identical start (the occupancy grid is merged below)
        merge_occupancy(self.avatar.occupancy)
        self.params = [p for g in self.opt.param_groups for p in g["params"]]
        counts = torch.tensor([float(self.cast.n_identities)], dtype=torch.float64)
        dist.all_reduce(counts)
        self.share = rank_share(self.cast.n_identities, int(counts.item()), self.world)
        self.bytes_per_step = 4 * (sum(p.numel() for p in self.params) + 1)
        self.comm_seconds = 0.0
        every = self.avatar.rc.occupancy_update_every
        if self.callbacks:
            inner = list(self.callbacks)

            shared = torch.Generator()

            def refresh_and_merge(ctx):
                # every rank refreshes the SAME cells (a generator seeded from (seed, step), equal
                # on all ranks), each through its own frames, then the cell-wise max: exactly one
                # process's max(old·decay, σ) over all identities. With per-rank cells the max
                # would restore the stale, undecayed value another rank kept, and cells once
                # occupied would never empty.
                shared.manual_seed(1_000_003 * (self.cfg.train.seed + 1) + ctx.step)
                ctx = TrainingContext(ctx.step, shared, ctx.sample_frames)
                for cb in inner:
                    cb(ctx)
                if OccupancyGrid.due(ctx.step, every):
                    merge_occupancy(self.avatar.occupancy)
            self.callbacks = [refresh_and_merge]

    def reduce_gradients(self, loss: torch.Tensor) -> torch.Tensor:
        """Average all gradients and the loss over the ranks, each weighted by :attr:`share` (one
        flat all_reduce); returns the mean loss."""
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.params]
        flat = torch.cat([g.reshape(-1) for g in grads] + [loss.detach().reshape(1)])
        if self.share != 1.0:
            flat *= self.share
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        self.comm_seconds += time.perf_counter() - t0
        flat /= self.world
        i = 0
        for p in self.params:
            n = p.numel()
            p.grad = flat[i:i + n].view_as(p).clone()
            i += n
        return flat[-1]

    def _finite_update(self, loss: torch.Tensor) -> bool:
        return super()._finite_update(self.reduce_gradients(loss))

    def out_of_time(self, elapsed: float) -> bool:
        """Rank 0's clock decides for every rank (ranks that disagreed would wait on each other)."""
        if self.cfg.train.max_minutes is None:
            return False
        flag = torch.tensor([float(super().out_of_time(elapsed))], device=self.device)
        dist.broadcast(flag, 0)
        return bool(flag.item())

    def save(self) -> Path:
        from ..model.checkpoint import checkpoint_path
        if self.rank == 0:
            return super().save()
        return checkpoint_path(self.run_dir, self.step)

    def evaluate(self, frames_per_identity: int | None, progress: bool = False) -> dict:
        """Each rank evaluates its identities; the result pools them (frame-weighted), like one process
        over the whole cast (cross-identity transfer metrics are left out: they need two shards).
        Only rank 0 shows progress."""
        mine = super().evaluate(frames_per_identity, progress and self.rank == 0)
        parts: list = [None] * self.world
        dist.all_gather_object(parts, mine.get("per_identity", {}))
        per = {k: v for p in parts for k, v in p.items()}
        n = np.array([v["n_frames"] for v in per.values()], np.float64)
        keys = [k for k in ("psnr", "ssim", "psnr_masked", "mouth_psnr")
                if all(v.get(k) is not None for v in per.values())]
        out = {k: float((np.array([v[k] for v in per.values()], np.float64) * n).sum() / n.sum()) for k in keys}
        out["lip_motion"] = mean_of(v.get("lip_motion") for v in per.values())  # per identity, as one process
        return {**out, "n_frames": int(n.sum()), "per_identity": per}

    def _log_metrics(self, m: dict, elapsed: float) -> None:
        if self.rank == 0:
            super()._log_metrics(m, elapsed)


def rank_share(mine: int, total: int, world: int) -> float:
    """Gradient weight of a rank holding ``mine`` of ``total`` identities among ``world`` ranks:
    one process draws rays identity-uniformly, so the weighted mean over ranks must give each
    identity 1/total of the step (e.g. 3 identities on 2 ranks → 4/3 and 2/3)."""
    return mine * world / total


def rank_threads(cfg: Config) -> int:
    """train.threads, else this machine's cores ÷ ranks on it (two ranks that each take every
    core run ~10× slower than one)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return cfg.train.threads or max(1, (os.cpu_count() or 1) // local)


def prepare_distributed(cfg: Config, identity_paths: list, out_root="outputs", resume=None) -> DistributedTrainer:
    """Join the process group (env:// from torchrun) and build this rank's trainer."""
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        cfg = Config.from_dict(state["config"], state["path"])
        run_dir = Path(state["path"]).parent.parent
    else:
        box = [run_dir_for(cfg, identity_paths, out_root)]
        dist.broadcast_object_list(box, 0)
        run_dir = box[0]
    threads = rank_threads(cfg)
    torch.set_num_threads(threads)
    if not cuda:
        tune_allocator()
    cast = load_cast(shard_paths(identity_paths, rank, world), cfg.data.expression_dims)
    info = None
    if state is None:
        mine = CastInfo.from_cast(cast, cfg.model.aabb_margin)
        parts: list = [None] * world
        counts: list = [None] * world
        dist.all_gather_object(parts, mine)
        dist.all_gather_object(counts, len(cast.frames("train")))
        info = merge_infos(parts, cfg.model.aabb_margin, counts)
    if rank == 0:
        print(f"distributed: backend {backend}, {world} ranks, {threads} thread(s) per rank; "
              f"rank 0 trains {', '.join(cast.names)}; run: {run_dir}", file=sys.stderr, flush=True)
    return DistributedTrainer(cfg, cast, run_dir, device=device, resume=state, info=info)


def train_distributed(cfg: Config, identity_paths: list, out_root="outputs", resume=None,
                      progress: bool = True) -> tuple[Path, dict]:
    """This rank's part of a distributed run; returns (run folder, pooled final metrics)."""
    trainer = None
    try:
        trainer = prepare_distributed(cfg, identity_paths, out_root, resume)
        metrics = trainer.run(progress=progress and trainer.rank == 0)
        dist.barrier()
        return trainer.run_dir, metrics
    except (RuntimeError, dist.DistBackendError) as e:
        where = f"; last checkpoint in {trainer.run_dir / 'checkpoints'}" if trainer is not None else ""
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RankFailed(f"rank {dist.get_rank() if dist.is_initialized() else '?'}: another rank died or "
                         f"stopped answering ({first[:160]}){where}") from None
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def launch(nproc: int, argv: list[str]) -> int:
    """``fastminerf train --nproc N``: torchrun's launcher on this machine (``--standalone``),
    running ``python -m fastminerf <argv>`` in N ranks. A failed rank → one line, exit 1."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=nproc, run_id=str(uuid.uuid4()),
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5)
    try:
        elastic_launch(config, sys.executable)("-m", "fastminerf", *argv)
    except ChildFailedError as e:
        # the first to fail: not one the launcher then stopped with SIGTERM
        rank, f = min(e.failures.items(), key=lambda kv: (kv[1].exitcode == -signal.SIGTERM, kv[1].timestamp, kv[0]))
        why = f"signal {f.signal_name()}" if f.exitcode < 0 else f"exit code {f.exitcode}"
        print(f"error: distributed training stopped: rank {rank} (pid {f.pid}) failed with {why}; "
              "resume from the run's last checkpoint with --resume RUN_DIR", file=sys.stderr)
        return 1
    return 0
