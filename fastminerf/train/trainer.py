"""The training loop: batch → render → loss → step, then the model's callbacks, evals, saves.

The loop is generic: the avatar says which parameters exist and which are frozen
(:meth:`~fastminerf.model.avatar.Avatar.optimizer_groups`), what the loss terms are
(:meth:`~fastminerf.model.avatar.Avatar.loss_terms`) and what runs after each step
(:meth:`~fastminerf.model.avatar.Avatar.training_callbacks`, e.g. the occupancy refresh).
Fine-tuning (personalise, adapt) is the same loop with a :class:`Scope`.

Runs are written to ``outputs/<data>/<config name>/<timestamp>/`` with ``config.yml``,
``checkpoints/step-XXXXXXXXX.ckpt``, ``metrics.jsonl`` (one line per eval) and, at the end,
``metrics.json`` (the final held-out evaluation).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from ..config import Config, save_config
from ..data.cast import Cast, load_cast
from ..data.rays import RayBatcher
from ..errors import InputError, TrainingDiverged
from ..eval.evaluate import evaluate_cast
from ..files import check_folder_path, remove_stale_temps, write_json
from ..memory import MiB, cap_bytes
from ..model.avatar import TrainingContext
from ..model.cast_info import CastInfo
from ..model.checkpoint import checkpoint_path, clean_checkpoint_folder, load_checkpoint, save_checkpoint
from ..model.frames import CastFrames, FrameBatch
from ..model.loading import build_avatar, default_device
from ..ops.cpu import tune_allocator
from ..ops.embed import mesh_cache, set_mesh_cache_bytes
from ..progress import Progress
from ..render.views import background_color
from ..threads import usable_cores
from .resume import resume_config

log = logging.getLogger(__name__)

#: bytes of all frames' vertices kept on the GPU (a step then gathers its meshes there)
GPU_VERTEX_CACHE_BYTES = 1 << 30


def exponential_schedule(opt, steps: int, final_ratio: float, warmup: int = 0):
    """lr(step) = lr₀ · min(1, (step + 1) / warmup) · final_ratio^(step / steps): MI-NeRF's
    exponential decay after a linear warm-up (without it, the first large Adam steps can
    push the colour head's sigmoid into saturation, where it stays black)."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / max(warmup, 1)) * final_ratio ** min(s / max(steps, 1), 1.0))


@dataclass
class Scope:
    """What a run draws rays from and may change (defaults: full training).

    Attributes:
        frames: global frames of the cast to draw rays from (None: every training frame).
        frozen: parameter groups kept fixed (names of ``model.avatar.GROUPS``).
        refresh_occupancy: refresh the occupancy grid during the run (off while the shared
            network is frozen, so the grid stays exactly as trained).
        origin: where a fine-tuning run started (checkpoint, step, kind); saved with it.
        first_step: the step the run starts counting from (a fine-tune continuing another
            run's numbering); the learning rate decays over ``train.steps − first_step``.
    """

    frames: np.ndarray | None = None
    frozen: tuple[str, ...] = ()
    refresh_occupancy: bool = True
    origin: dict | None = None
    first_step: int = 0

    def to_dict(self) -> dict:
        return {"frames": None if self.frames is None else np.asarray(self.frames, np.int64).tolist(),
                "frozen": list(self.frozen), "refresh_occupancy": self.refresh_occupancy, "origin": self.origin,
                "first_step": self.first_step}

    @staticmethod
    def from_dict(d: dict | None) -> Scope:
        d = d or {}
        frames = d.get("frames")
        return Scope(None if frames is None else np.asarray(frames, np.int64), tuple(d.get("frozen", ())),
                     bool(d.get("refresh_occupancy", True)), d.get("origin"), int(d.get("first_step", 0)))


@dataclass
class StepStats:
    loss: float
    psnr: float
    n_samples: int
    seconds: float


class Trainer:
    """Training state of one run.

    Args:
        cfg: the resolved config. cast: the loaded training cast. run_dir: output folder.
        device: torch device. resume: a checkpoint dict to continue from (exactly).
        init: a checkpoint dict whose weights (``cast``, ``model``) start a new run — fine-tuning
            with a fresh optimizer; the cast may then hold any subset of the model's identities.
        scope: what the run draws from and may change (fine-tuning; restored on resume).
        info: the model's cast description for a new run when ``cast`` holds only part of it
            (a rank's shard of identities, see :mod:`.distributed`); default: from ``cast``.
    """

    def __init__(self, cfg: Config, cast: Cast, run_dir: Path, *, device=None, resume: dict | None = None,
                 init: dict | None = None, scope: Scope | None = None, info: CastInfo | None = None):
        self.cfg, self.cast, self.run_dir = cfg, cast, Path(run_dir)
        self.device = torch.device(device) if device is not None else default_device()
        tc = cfg.train
        torch.manual_seed(tc.seed)
        start = resume if resume is not None else init
        if start is not None:
            info = CastInfo.from_dict(start["cast"])
        elif info is None:
            info = CastInfo.from_cast(cast, cfg.model.aabb_margin)
        self.scope = Scope.from_dict(resume.get("scope")) if resume is not None else (scope or Scope())
        if resume is not None and self.scope.origin is None and info.names != cast.names:
            raise InputError(resume["path"], f"checkpoint was trained on {', '.join(info.names)}, "
                                             f"got {', '.join(cast.names)} (resume with the same identity folders)")
        self.avatar = build_avatar(cfg, info, self.device)
        cap_mesh_cache(tc.mesh_cache_mb)
        info.model_index(cast)  # every cast identity is in the model with its frame count (else one line)
        self.frames = CastFrames(self.avatar, cast, cache_meshes=True, gpu_cache_bytes=GPU_VERTEX_CACHE_BYTES)
        self.batcher = RayBatcher(cast, cfg.data.rays_per_batch, cfg.data.frames_per_batch, cfg.data.inside_fraction,
                                  device=self.device, seed=tc.seed, frames=self.scope.frames,
                                  mouth_fraction=cfg.data.mouth_fraction, mark_mouth=tc.mouth_weight != 1.0)
        self.gen = torch.Generator().manual_seed(tc.seed + 1)  # backgrounds and occupancy refreshes
        lrs = {"grid": tc.lr_grid, "mlp": tc.lr_mlp, "codes": tc.lr_codes}
        groups = [{**g, "lr": lrs[g["name"]]} for g in self.avatar.optimizer_groups(self.scope.frozen)]
        self.opt = torch.optim.Adam(groups, betas=(0.9, 0.99), eps=tc.adam_eps)
        self.sched = exponential_schedule(self.opt, tc.steps - self.scope.first_step, tc.lr_final_ratio, tc.lr_warmup_steps)
        self.callbacks = self.avatar.training_callbacks(self.scope.refresh_occupancy)
        self.step = self.scope.first_step
        self.bad_steps = 0
        self.seconds_before = 0.0  # training time of the runs this one resumes (max_minutes counts it)
        self._started = time.perf_counter()
        if start is None:
            self._init_occupancy()
        else:
            self.avatar.load_state_dict(start["model"])
        if resume is not None:
            self.opt.load_state_dict(resume["optimizer"])
            self.sched.load_state_dict(resume["scheduler"])
            self.batcher.load_state_dict(resume["batcher"])
            self.gen.set_state(resume["rng"])
            self.step = int(resume["step"])
            self.seconds_before = float(resume.get("train_seconds", 0.0))

    # ------------------------------------------------------------------ pieces
    def _init_occupancy(self) -> None:
        train = self.cast.frames("train")
        pick = train[np.linspace(0, len(train) - 1, min(len(train), 256)).astype(int)]
        self.avatar.init_occupancy(torch.from_numpy(self.cast.vertices(pick)))

    def sample_frames(self, n: int) -> FrameBatch:
        """FrameBatch of up to ``n`` distinct random frames the run draws rays from."""
        table = self.batcher.frame_table
        return self.frames.batch(table[torch.randint(len(table), (n,), generator=self.gen)].unique())

    def drop_expressions(self, expression: torch.Tensor, p: float) -> torch.Tensor:
        """[K, E] → [K, E]: each frame's row replaced by the training mean with probability
        ``p`` (drawn from the run's generator, so resuming stays exact)."""
        drop = (torch.rand(expression.shape[0], generator=self.gen) < p).to(expression.device)
        return torch.where(drop[:, None], self.avatar.expr_mean.expand_as(expression), expression)

    def background(self, n: int) -> torch.Tensor:
        mode = self.cfg.render.background
        if mode == "random":
            return torch.rand(n, 3, generator=self.gen).to(self.device)
        return background_color(mode, self.device).expand(n, 3)

    def train_step(self) -> StepStats:
        t0 = time.perf_counter()
        tc = self.cfg.train
        batch = self.batcher.sample()
        frames, slots = torch.unique(batch.frame, return_inverse=True)
        fb = self.frames.batch(frames)
        if tc.expression_dropout > 0:
            if tc.dropout_keeps_mouth:
                fb.mouth_expression = fb.expression
            fb.expression = self.drop_expressions(fb.expression, tc.expression_dropout)
        bg = self.background(len(batch))
        out = self.avatar.render_rays(batch.origins, batch.directions, slots, fb, bg, lip_prior=tc.lip_surface_weight > 0)
        alpha = batch.rgba[:, 3:]
        target = batch.rgba[:, :3] * alpha + bg * (1 - alpha)
        loss = sum(self.avatar.loss_terms(out, target, alpha[:, 0], fb, tc, batch.in_mouth).values())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self._finite_update(loss):
            self.opt.step()
        self.sched.step()
        self.step += 1
        ctx = TrainingContext(self.step, self.gen, self.sample_frames)
        for callback in self.callbacks:
            callback(ctx)
        with torch.no_grad():
            mse = (out["rgb"] - target).pow(2).mean()
        return StepStats(float(loss.detach()), float(-10 * torch.log10(mse.clamp_min(1e-10))), out["n_samples"], time.perf_counter() - t0)

    #: consecutive steps with a non-finite loss or gradient before training stops
    MAX_BAD_STEPS = 20

    def _finite_update(self, loss: torch.Tensor) -> bool:
        """False (the optimizer step is skipped) when the loss or any gradient is NaN/inf, so
        one bad batch never reaches the weights or a checkpoint. Raises
        :class:`~fastminerf.errors.TrainingDiverged` after :data:`MAX_BAD_STEPS` such steps in a row."""
        grads = [p.grad for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else loss
        ok = bool(torch.isfinite(loss + norm))
        self.bad_steps = 0 if ok else self.bad_steps + 1
        if self.bad_steps >= self.MAX_BAD_STEPS:
            raise TrainingDiverged(f"training diverged: {self.bad_steps} steps in a row with a NaN/inf loss or gradient "
                                   f"(step {self.step + 1}); the checkpoints in {self.run_dir / 'checkpoints'} are from "
                                   "before it. Lower train.lr_mlp / train.lr_grid or use another conditioning.")
        return ok

    def state(self) -> dict:
        return {
            "step": self.step,
            "config": self.cfg.to_dict(),
            "cast": self.avatar.info.to_dict(),
            "model": self.avatar.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "batcher": self.batcher.state_dict(),
            "rng": self.gen.get_state(),
            "scope": self.scope.to_dict(),
            "train_seconds": self.seconds_before + time.perf_counter() - self._started,
        }

    def save(self) -> Path:
        return save_checkpoint(checkpoint_path(self.run_dir, self.step), self.state(), self.cfg.train.keep_checkpoints)

    def evaluate(self, frames_per_identity: int | None, progress: bool = False) -> dict:
        self.avatar.eval()
        try:
            return evaluate_cast(self.avatar, self.cast, "test", frames_per_identity, self.cfg.render.eval_background,
                                 progress=progress)
        finally:
            self.avatar.train()

    # ------------------------------------------------------------------ loop
    def run(self, progress: bool = True, final_eval: bool = True,
            step_guard: Callable[[], AbstractContextManager] | None = None) -> dict:
        """Train until ``train.steps`` (or ``train.max_minutes``); returns the final metrics.

        ``step_guard``: a context-manager factory held around each step (with its evals and
        saves) and the final save and evaluation — the live preview's time share.
        """
        tc = self.cfg.train
        guard = step_guard or contextlib.nullcontext
        self.run_dir.mkdir(parents=True, exist_ok=True)
        clean_checkpoint_folder(self.run_dir)
        remove_stale_temps(self.run_dir)
        save_config(self.cfg, self.run_dir / "config.yml")
        start = self._started = time.perf_counter()
        start -= self.seconds_before  # a resumed run continues its time budget
        rays = self.cfg.data.rays_per_batch
        last_eval: dict = {}
        with Progress(tc.steps, "step", enabled=progress, start=self.step) as bar:
            while self.step < tc.steps:
                with guard():
                    st = self.train_step()
                    elapsed = time.perf_counter() - start
                    if self.step % tc.log_every == 0 or self.step == tc.steps:
                        bar.update(self.step, step_detail(st, rays, last_eval.get("psnr")))
                    if tc.eval_every and self.step % tc.eval_every == 0 and self.step < tc.steps:
                        last_eval = self.evaluate(tc.eval_frames)
                        self._log_metrics(last_eval, elapsed)
                    if tc.save_every and self.step % tc.save_every == 0:
                        self.save()
                if self.out_of_time(elapsed):
                    bar.note(f"time budget of {tc.max_minutes} min reached at step {self.step}")
                    break
        with guard():
            self.save()
            train_seconds = time.perf_counter() - start
            if final_eval:
                log.info("final evaluation on %s held-out frames per identity (train.final_eval_frames; "
                         "fastminerf eval for all of them)", tc.final_eval_frames or "all")
            metrics = self.evaluate(tc.final_eval_frames, progress) if final_eval else {}
        metrics.update(step=self.step, train_seconds=round(train_seconds, 2))
        if final_eval:
            self._log_metrics(metrics, train_seconds)
            write_json(self.run_dir / "metrics.json", metrics)
        return metrics

    def out_of_time(self, elapsed: float) -> bool:
        """Whether ``train.max_minutes`` is spent after ``elapsed`` seconds of training."""
        return self.cfg.train.max_minutes is not None and elapsed > 60 * self.cfg.train.max_minutes

    def _log_metrics(self, m: dict, elapsed: float) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "seconds": round(elapsed, 2), **{k: v for k, v in m.items() if k != "per_identity"}}) + "\n")


def step_detail(st: StepStats, rays: int, eval_psnr: float | None) -> str:
    """The figures of a training step's progress line."""
    ev = f"  eval {eval_psnr:5.2f} dB" if eval_psnr is not None else ""
    return (f"{rays / max(st.seconds, 1e-9) / 1e3:7.1f}k rays/s  {st.n_samples / 1e3:6.1f}k samples  "
            f"loss {st.loss:.4f}  psnr {st.psnr:5.2f} dB{ev}")


def cap_mesh_cache(megabytes: float | None) -> int:
    """Set the BVH cache's cap from ``train.mesh_cache_mb`` (None: the default from available
    memory) and log it once per value; returns the cap in bytes."""
    cap = cap_bytes(megabytes)
    cache = mesh_cache()
    if cap != getattr(cap_mesh_cache, "announced", None):
        log.info("cache: BVH ≤ %d MB (train.mesh_cache_mb%s)", round(cap / MiB),
                 "; default: 1/4 of available memory, ≤ 4096" if megabytes is None else "")
        cap_mesh_cache.announced = cap
    set_mesh_cache_bytes(cap)
    return cache.capacity


def run_dir_for(cfg: Config, identity_paths: list, out_root: str | Path = "outputs") -> Path:
    """outputs/<data>/<config name>/<timestamp>/ (data = the first path's folder name)."""
    data = Path(identity_paths[0]).resolve().name or "data"
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    return Path(out_root) / data / cfg.name / stamp


def prepare_trainer(cfg: Config, identity_paths: list, out_root: str | Path = "outputs", resume: str | Path | None = None,
                    device=None, resume_changes: tuple[str | None, list[str]] = (None, [])) -> Trainer:
    """A Trainer for a new run on identity folders, or one resumed from a checkpoint (with the
    checkpoint's own config, thread count included, so it continues exactly).

    ``resume_changes``: (preset, overrides) given on the command line with ``--resume``; the
    safe ones (steps, max_minutes, save_every) are applied and logged, others refused
    (see :mod:`fastminerf.train.resume`)."""
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        run_dir = Path(state["path"]).parent.parent
        cfg, applied = resume_config(Config.from_dict(state["config"], state["path"]), *resume_changes, state["path"])
        if applied:
            log.info("resume: applying %s (the learning-rate schedule follows train.steps)", ", ".join(applied))
    else:
        run_dir = run_dir_for(cfg, identity_paths, out_root)
    if cfg.train.threads is None:  # record the count used, so that a resume uses it too
        cfg.train.threads = usable_cores()
    torch.set_num_threads(cfg.train.threads)
    log.info("threads: %d (%d usable cores; OpenMP wait policy %s)", cfg.train.threads, usable_cores(),
             os.environ.get("OMP_WAIT_POLICY", "default"))
    if not torch.cuda.is_available():
        tune_allocator()
    check_folder_path(run_dir / "config.yml")
    cast = load_cast(identity_paths, cfg.data.expression_dims)
    for d in cast.identities:  # the final evaluation needs held-out frames: say so before training
        if d.is_train.all():
            raise InputError(d.root / "transforms_test.json", "no held-out frames (missing or empty); the final "
                                                               "evaluation needs at least one")
    return Trainer(cfg, cast, run_dir, device=device, resume=state)


def train(cfg: Config, identity_paths: list, out_root: str | Path = "outputs", resume: str | Path | None = None,
          progress: bool = True, device=None, resume_changes: tuple[str | None, list[str]] = (None, [])) -> tuple[Path, dict]:
    """Train (or resume) a model on identity folders; returns (run folder, final metrics)."""
    trainer = prepare_trainer(cfg, identity_paths, out_root, resume, device, resume_changes)
    metrics = trainer.run(progress=progress)
    return trainer.run_dir, metrics


def steps_for_minutes(minutes: float, seconds_per_step: float) -> int:
    return max(1, int(math.floor(60 * minutes / seconds_per_step)))
