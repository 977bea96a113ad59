"""The training loop: batch → render → loss → step, plus occupancy refreshes, evals, saves.

Stages live elsewhere (data.rays, model.avatar, train.losses, eval.evaluate); this module
only orders them. Runs are written to ``outputs/<data>/<config name>/<timestamp>/`` with
``config.yml``, ``checkpoints/step-XXXXXXXXX.ckpt``, ``metrics.jsonl`` (one line per eval)
and, at the end, ``metrics.json`` (the final held-out evaluation).
"""
from __future__ import annotations

import contextlib
import json
import math
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable, ContextManager

import numpy as np
import torch

from ..config import Config, save_config
from ..data.cast import Cast, load_cast
from ..data.rays import RayBatcher
from ..errors import InputError
from ..eval.evaluate import evaluate_cast
from ..model.avatar import Avatar, CastInfo, FrameBatch
from ..ops._backend import resolve_backend
from ..render.views import background_color
from .checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from .losses import code_norms, photometric


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_avatar(cfg: Config, info: CastInfo, device, backend: str | None = None) -> Avatar:
    """An Avatar for ``info`` on ``device`` (backend resolved from the config unless given)."""
    backend = backend or resolve_backend(cfg.train.backend)
    return Avatar(cfg.model, cfg.render, info, backend=backend).to(device)


def make_optimizer(avatar: Avatar, cfg: Config, frozen: tuple[str, ...] = ()) -> torch.optim.Adam:
    """Adam with three groups: hash grid, networks (MLPs + conditioning), codes.

    ``frozen`` names groups/modules left out: any of "grid", "mlp", "conditioning",
    "identity", "latent" (personalisation freezes the conditioning module, adaptation
    everything but the new codes).
    """
    tc = cfg.train
    grid = [] if "grid" in frozen else [avatar.field.grid.table]
    mlp = []
    for name, p in avatar.named_parameters():
        if name.startswith(("field.grid", "identity_codes", "latent_codes")):
            continue
        if name.startswith("conditioning") and "conditioning" in frozen:
            continue
        if not name.startswith("conditioning") and "mlp" in frozen:
            continue
        mlp.append(p)
    codes = ([] if "identity" in frozen else [avatar.identity_codes.weight]) + ([] if "latent" in frozen else [avatar.latent_codes.weight])
    groups = [g for g in ({"params": grid, "lr": tc.lr_grid, "name": "grid"}, {"params": mlp, "lr": tc.lr_mlp, "name": "mlp"},
                          {"params": codes, "lr": tc.lr_codes, "name": "codes"}) if g["params"]]
    return torch.optim.Adam(groups, betas=(0.9, 0.99), eps=tc.adam_eps)


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
        frozen: parameter groups kept out of the optimizer (see :func:`make_optimizer`).
        refresh_occupancy: refresh the occupancy grid during the run (off while the shared
            network is frozen, so the grid stays exactly as trained).
        origin: where a fine-tuning run started (checkpoint, step, kind); saved with it.
    """

    frames: np.ndarray | None = None
    frozen: tuple[str, ...] = ()
    refresh_occupancy: bool = True
    origin: dict | None = None

    def to_dict(self) -> dict:
        return {"frames": None if self.frames is None else np.asarray(self.frames, np.int64).tolist(),
                "frozen": list(self.frozen), "refresh_occupancy": self.refresh_occupancy, "origin": self.origin}

    @staticmethod
    def from_dict(d: dict | None) -> "Scope":
        d = d or {}
        frames = d.get("frames")
        return Scope(None if frames is None else np.asarray(frames, np.int64), tuple(d.get("frozen", ())),
                     bool(d.get("refresh_occupancy", True)), d.get("origin"))


class TrainingDiverged(InputError):
    """Training produced NaN/inf for many steps in a row (printed as one line by the CLI)."""

    def __init__(self, problem: str):
        super().__init__(None, problem)


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
    """

    def __init__(self, cfg: Config, cast: Cast, run_dir: Path, device=None, resume: dict | None = None,
                 init: dict | None = None, scope: Scope | None = None):
        self.cfg, self.cast, self.run_dir = cfg, cast, Path(run_dir)
        self.device = torch.device(device) if device is not None else default_device()
        tc = cfg.train
        torch.manual_seed(tc.seed)
        start = resume if resume is not None else init
        info = CastInfo.from_cast(cast, cfg.model.aabb_margin) if start is None else CastInfo.from_dict(start["cast"])
        self.scope = Scope.from_dict(resume.get("scope")) if resume is not None else (scope or Scope())
        if resume is not None and self.scope.origin is None and info.names != cast.names:
            raise ValueError(f"checkpoint was trained on {info.names}, got {cast.names}")
        self.avatar = build_avatar(cfg, info, self.device)
        self.model_identity, self.model_frame = info.model_index(cast)  # cast → model indices (identity maps when training)
        self.token = uuid.uuid4().hex  # cache key for this cast's static meshes
        self.batcher = RayBatcher(cast, cfg.data.rays_per_batch, cfg.data.frames_per_batch, cfg.data.inside_fraction,
                                  device=self.device, seed=tc.seed, frames=self.scope.frames)
        self.gen = torch.Generator().manual_seed(tc.seed + 1)  # backgrounds and occupancy refreshes
        self._gpu_vertices = self._vertex_cache(cast)
        self.opt = make_optimizer(self.avatar, cfg, self.scope.frozen)
        self.sched = exponential_schedule(self.opt, tc.steps, tc.lr_final_ratio, tc.lr_warmup_steps)
        self.step = 0
        self.bad_steps = 0
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

    # ------------------------------------------------------------------ pieces
    def _init_occupancy(self) -> None:
        train = self.cast.frames("train")
        pick = train[np.linspace(0, len(train) - 1, min(len(train), 256)).astype(int)]
        v = torch.from_numpy(self.cast.vertices(pick).reshape(-1, 3)).to(self.device)
        a = self.avatar
        a.occupancy.init_from_meshes(v, a.far_distance, self.cfg.render.occupancy_init_band * a.canonical_diag,
                                     init_density=2 * a.occupancy_sigma_threshold)

    GPU_VERTEX_CACHE_BYTES = 1 << 30

    def _vertex_cache(self, cast: Cast) -> torch.Tensor | None:
        """All frames' vertices [NF, V, 3] on the GPU when they fit in 1 GiB (a step then
        gathers its K meshes on the device instead of copying them from host memory)."""
        if self.device.type != "cuda" or cast.n_frames * cast.canonical.shape[0] * 12 > self.GPU_VERTEX_CACHE_BYTES:
            return None
        return torch.from_numpy(cast.vertices(np.arange(cast.n_frames))).to(self.device)

    def frame_batch(self, frames: torch.Tensor, own_latents: bool = True) -> FrameBatch:
        """FrameBatch of global training frames [K] (latent codes with gradients)."""
        f = frames.cpu().numpy()
        dev = self.device
        cached = self._gpu_vertices
        return FrameBatch(
            vertices=cached[frames.to(dev)] if cached is not None else torch.from_numpy(self.cast.vertices(f)).to(dev),
            expression=torch.from_numpy(self.cast.expressions[f]).to(dev),
            identity=torch.from_numpy(self.model_identity[self.cast.frame_identity[f]]).to(dev),
            latent=self.avatar.frame_latents(torch.from_numpy(self.model_frame[f]).to(dev)),
            keys=[(self.token, int(x)) for x in f],
        )

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
        fb = self.frame_batch(frames)
        if tc.expression_dropout > 0:
            fb.expression = self.drop_expressions(fb.expression, tc.expression_dropout)
        bg = self.background(len(batch))
        out = self.avatar.render_rays(batch.origins, batch.directions, slots, fb, bg)
        alpha = batch.rgba[:, 3:]
        target = batch.rgba[:, :3] * alpha + bg * (1 - alpha)
        loss = photometric(out["rgb"], target, tc.loss, tc.huber_delta)
        if tc.alpha_weight > 0:
            loss = loss + tc.alpha_weight * (out["opacity"] - alpha[:, 0]).pow(2).mean()
        if self.avatar.latent_dim > 0:
            loss = loss + tc.latent_reg * code_norms(fb.latent)
        loss = loss + tc.identity_reg * code_norms(self.avatar.identity_codes(fb.identity))
        if "offset_sq" in out and out["offset_sq"].numel():
            loss = loss + self.cfg.model.residual_weight * out["offset_sq"].mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self._finite_update(loss):
            self.opt.step()
        self.sched.step()
        self.step += 1
        if self.scope.refresh_occupancy and self._occupancy_due():
            self.update_occupancy()
        with torch.no_grad():
            mse = (out["rgb"] - target).pow(2).mean()
        return StepStats(float(loss.detach()), float(-10 * torch.log10(mse.clamp_min(1e-10))), out["n_samples"], time.perf_counter() - t0)

    #: consecutive steps with a non-finite loss or gradient before training stops
    MAX_BAD_STEPS = 20

    def _finite_update(self, loss: torch.Tensor) -> bool:
        """False (the optimizer step is skipped) when the loss or any gradient is NaN/inf, so
        one bad batch never reaches the weights or a checkpoint. Raises
        :class:`TrainingDiverged` after :data:`MAX_BAD_STEPS` such steps in a row."""
        grads = [p.grad for g in self.opt.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])) if grads else loss
        ok = bool(torch.isfinite(loss + norm))
        self.bad_steps = 0 if ok else self.bad_steps + 1
        if self.bad_steps >= self.MAX_BAD_STEPS:
            raise TrainingDiverged(f"training diverged: {self.bad_steps} steps in a row with a NaN/inf loss or gradient "
                                   f"(step {self.step + 1}); the checkpoints in {self.run_dir / 'checkpoints'} are from "
                                   "before it. Lower train.lr_mlp / train.lr_grid or use another conditioning.")
        return ok

    def _occupancy_due(self) -> bool:
        every = max(1, min(self.step // 16, self.cfg.render.occupancy_update_every))
        return self.step % every == 0

    @torch.no_grad()
    def update_occupancy(self) -> None:
        """Refresh random cells through the meshes of a few random training frames."""
        train = self.batcher.frame_table
        frames = train[torch.randint(len(train), (8,), generator=self.gen)].unique()
        fb = self.frame_batch(frames)
        occ = self.avatar.occupancy
        n = max(4096, occ.candidates.shape[0] // 8)

        def density(points):
            slots = torch.randint(len(frames), (points.shape[0],), generator=self.gen).to(self.device)
            return self.avatar.density_at(points, slots, fb)

        occ.update(density, n, self.cfg.render.occupancy_decay, self.avatar.occupancy_sigma_threshold, self.gen)

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
        }

    def save(self) -> Path:
        return save_checkpoint(checkpoint_path(self.run_dir, self.step), self.state(), self.cfg.train.keep_checkpoints)

    def evaluate(self, frames_per_identity: int | None) -> dict:
        self.avatar.eval()
        try:
            return evaluate_cast(self.avatar, self.cast, "test", frames_per_identity, self.cfg.render.eval_background)
        finally:
            self.avatar.train()

    # ------------------------------------------------------------------ loop
    def run(self, progress: bool = True, final_eval: bool = True,
            step_guard: Callable[[], ContextManager] | None = None) -> dict:
        """Train until ``train.steps`` (or ``train.max_minutes``); returns the final metrics.

        ``step_guard``: a context-manager factory held around each step (with its evals and
        saves) and the final save and evaluation — the live preview's time share.
        """
        from .progress import Progress

        tc = self.cfg.train
        guard = step_guard or contextlib.nullcontext
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run_dir / "config.yml")
        start = time.perf_counter()
        rays = self.cfg.data.rays_per_batch
        last_eval: dict = {}
        with Progress(tc.steps, enabled=progress) as bar:
            while self.step < tc.steps:
                with guard():
                    st = self.train_step()
                    elapsed = time.perf_counter() - start
                    if self.step % tc.log_every == 0 or self.step == tc.steps:
                        bar.update(self.step, loss=st.loss, psnr=st.psnr, rays_per_s=rays / max(st.seconds, 1e-9),
                                   samples=st.n_samples, eval_psnr=last_eval.get("psnr"))
                    if tc.eval_every and self.step % tc.eval_every == 0 and self.step < tc.steps:
                        last_eval = self.evaluate(tc.eval_frames)
                        self._log_metrics(last_eval, elapsed)
                    if tc.save_every and self.step % tc.save_every == 0:
                        self.save()
                if tc.max_minutes is not None and elapsed > 60 * tc.max_minutes:
                    bar.note(f"time budget of {tc.max_minutes} min reached at step {self.step}")
                    break
        with guard():
            self.save()
            train_seconds = time.perf_counter() - start
            metrics = self.evaluate(None) if final_eval else {}
        metrics.update(step=self.step, train_seconds=round(train_seconds, 2))
        if final_eval:
            self._log_metrics(metrics, train_seconds)
            tmp = self.run_dir / ".metrics.json.tmp"
            tmp.write_text(json.dumps(metrics, indent=1))
            tmp.replace(self.run_dir / "metrics.json")
        return metrics

    def _log_metrics(self, m: dict, elapsed: float) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, "seconds": round(elapsed, 2), **{k: v for k, v in m.items() if k != "per_identity"}}) + "\n")


def run_dir_for(cfg: Config, identity_paths: list, out_root: str | Path = "outputs") -> Path:
    """outputs/<data>/<config name>/<timestamp>/ (data = the first path's folder name)."""
    data = Path(identity_paths[0]).resolve().name or "data"
    stamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    return Path(out_root) / data / cfg.name / stamp


def prepare_trainer(cfg: Config, identity_paths: list, out_root: str | Path = "outputs", resume: str | Path | None = None,
                    device=None) -> Trainer:
    """A Trainer for a new run on identity folders, or one resumed from a checkpoint."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    if not torch.cuda.is_available():
        from ..ops.cpu import tune_allocator

        tune_allocator()
    state = None
    if resume is not None:
        state = load_checkpoint(resume)
        run_dir = Path(state["path"]).parent.parent
        cfg = Config.from_dict(state["config"], state["path"])
    else:
        run_dir = run_dir_for(cfg, identity_paths, out_root)
    cast = load_cast(identity_paths, cfg.data.expression_dims)
    return Trainer(cfg, cast, run_dir, device=device, resume=state)


def train(cfg: Config, identity_paths: list, out_root: str | Path = "outputs", resume: str | Path | None = None,
          progress: bool = True, device=None) -> tuple[Path, dict]:
    """Train (or resume) a model on identity folders; returns (run folder, final metrics)."""
    trainer = prepare_trainer(cfg, identity_paths, out_root, resume, device)
    metrics = trainer.run(progress=progress)
    return trainer.run_dir, metrics


def steps_for_minutes(minutes: float, seconds_per_step: float) -> int:
    return max(1, int(math.floor(60 * minutes / seconds_per_step)))
