"""Personalisation and new identities (MI-NeRF: "personalization", "unseen identity").

:func:`personalize` fine-tunes a trained model on one identity's training frames at a small
learning rate with the multiplicative (conditioning) module frozen. The result is a new
checkpoint specialised to that identity: the shared grid and MLPs moved, so the other
identities no longer render exactly as before (their codes are untouched).

:func:`add_identity` adds an unseen identity from the first seconds of its video. The
checkpoint grows by one identity code and one latent code per frame of the new sequence;
only these new codes are optimised, with the whole network and the occupancy grid frozen,
so every other identity renders bit-for-bit as before. Optionally it is then personalised
on the same first seconds (which does move the shared network).

Both run the ordinary training loop (:class:`~fastminerf.train.trainer.Trainer`) on a cast
that holds only the identity concerned; a :class:`~fastminerf.train.trainer.Scope` picks
the frames rays are drawn from and the parameter groups that train, and the cast's frames
map onto the model's latent rows by name (:meth:`CastInfo.model_index`).
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..data.cast import Cast, load_cast
from ..errors import InputError
from ..eval.evaluate import evaluate_identity
from ..files import write_json
from ..model.avatar import GROUPS
from ..model.cast_info import CastInfo
from ..model.checkpoint import checkpoint_path, load_checkpoint
from ..model.loading import avatar_from_state, cast_of
from .trainer import Scope, Trainer

log = logging.getLogger(__name__)

#: the whole network (what adapting a new identity keeps fixed)
NETWORK = ("grid", "mlp", "conditioning")
#: warn when fewer of a new identity's mesh vertices than this lie in occupied cells
COVERAGE_WARNING = 0.97
#: default personalisation lr, as a fraction of the lr the training run ended at
PERSONALIZE_LR_FRACTION = 1.0


@dataclass
class AdaptResult:
    """Outcome of :func:`personalize` / :func:`add_identity`.

    Attributes:
        kind: "personalize" or "adapt". identity: the identity's name.
        run_dir: the new run folder. checkpoint: its final checkpoint file.
        before, after: held-out metrics of the identity ({"psnr", "ssim", "psnr_masked",
            "n_frames"}); for a new identity "before" is at its initial code.
        steps: optimisation steps. frames: training frames rays were drawn from.
        seconds: wall time of the optimisation. settings: learning rates, frozen groups, ...
    """

    kind: str
    identity: str
    run_dir: Path
    checkpoint: Path
    before: dict
    after: dict
    steps: int
    frames: int
    seconds: float
    settings: dict

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(run_dir=str(self.run_dir), checkpoint=str(self.checkpoint))
        return d


def parse_groups(text: str | list | tuple | None) -> tuple[str, ...]:
    """Group names from "conditioning,grid" (or a list); InputError for unknown names."""
    if text is None:
        return ()
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text)]
    items = [t for t in items if t and t != "none"]
    bad = [t for t in items if t not in GROUPS]
    if bad:
        raise InputError(None, f"unknown parameter group {bad[0]!r} for --freeze; choose from {', '.join(GROUPS)} (or none)")
    return tuple(dict.fromkeys(items))


def first_seconds(cast: Cast, identity: int, seconds: float | None) -> np.ndarray:
    """Global training frames of ``identity`` in the first ``seconds`` of its video (all
    training frames when None): the first round(seconds · fps) consecutive training frames."""
    train = cast.frames("train", identity)
    if seconds is None:
        return train
    if seconds <= 0:
        raise InputError(None, f"--seconds must be positive (got {seconds})")
    n = max(1, int(round(seconds * cast.identities[identity].fps)))
    return train[:n]


def fine_tune_config(cfg: Config, steps: int, lr_grid: float | None = None, lr_mlp: float | None = None,
                     lr_codes: float | None = None) -> Config:
    """A copy of ``cfg`` for a fine-tuning run: ``steps`` steps, given learning rates (None
    keeps the config's), no warm-up, no periodic evals, no time budget, one checkpoint at the end."""
    if steps < 1:
        raise InputError(None, f"--steps must be at least 1 (got {steps})")
    out = Config.from_dict(cfg.to_dict())
    t = out.train
    t.steps, t.max_minutes, t.eval_every, t.save_every, t.lr_warmup_steps = int(steps), None, 0, 0, 0
    for key, value in (("lr_grid", lr_grid), ("lr_mlp", lr_mlp), ("lr_codes", lr_codes)):
        if value is not None:
            if not value > 0:
                raise InputError(None, f"learning rates must be positive (got {key}={value})")
            setattr(t, key, float(value))
    return out


def personalize_lrs(cfg: Config, lr: float | None) -> dict:
    """Learning rates of a personalisation run: ``lr`` for the hash grid (default: the grid lr
    the training ended at × :data:`PERSONALIZE_LR_FRACTION`); MLPs and codes keep their
    training ratios to the grid lr."""
    t = cfg.train
    grid = float(lr) if lr is not None else t.lr_grid * t.lr_final_ratio * PERSONALIZE_LR_FRACTION
    return {"lr_grid": grid, "lr_mlp": grid * t.lr_mlp / t.lr_grid, "lr_codes": grid * t.lr_codes / t.lr_grid}


def derived_run_dir(checkpoint_path: str | Path, suffix: str) -> Path:
    """``<base run>.<suffix>`` beside the checkpoint's run folder (``-2``, ``-3``... when taken)."""
    p = Path(checkpoint_path)
    base = p.parent.parent if p.parent.name == "checkpoints" else p.parent
    cand = base.parent / f"{base.name}.{suffix}"
    k = 2
    while cand.exists():
        cand = base.parent / f"{base.name}.{suffix}-{k}"
        k += 1
    return cand


def _run(cfg: Config, cast: Cast, run_dir: Path, start: dict, scope: Scope, device, progress: bool) -> Trainer:
    """Fine-tune from checkpoint dict ``start`` for ``cfg.train.steps`` steps, numbered after
    ``scope.first_step`` (the lr decays over these steps only)."""
    cfg = Config.from_dict(cfg.to_dict())
    cfg.train.steps += scope.first_step
    trainer = Trainer(cfg, cast, run_dir, device=device, init=start, scope=scope)
    trainer.run(progress=progress, final_eval=False)
    trainer.avatar.eval()
    return trainer


def _evaluate(avatar, cast: Cast, frames: int | None, background: str) -> dict:
    r = evaluate_identity(avatar, cast, 0, "test", frames, background)
    r.pop("values")
    return r


def _write_report(result: AdaptResult) -> None:
    write_json(result.run_dir / "adapt.json", result.to_dict())


def personalize(checkpoint: str | Path, identity: str, *, steps: int = 300, lr: float | None = None,
                frozen=("conditioning",), seconds: float | None = None, out: str | Path | None = None,
                identity_paths: list | None = None, eval_frames: int | None = None, device=None,
                progress: bool = True) -> AdaptResult:
    """Fine-tune a trained model on one identity (MI-NeRF personalisation).

    Args:
        checkpoint: checkpoint file or run folder. identity: a name of the model's cast.
        steps: optimisation steps. lr: hash-grid lr (see :func:`personalize_lrs`).
        frozen: parameter groups kept fixed (default: the conditioning module).
        seconds: draw only from the first seconds of the identity's training frames.
        out: run folder (default ``<base run>.personalize-<identity>``).
        identity_paths: identity folders if they moved since training.
        eval_frames: held-out frames evaluated before/after (default: all).
    Returns:
        :class:`AdaptResult` (also written to ``<run>/adapt.json``).
    """
    state = load_checkpoint(checkpoint)
    avatar, cfg = avatar_from_state(state, device)
    if identity not in avatar.info.names:
        raise InputError(None, f"unknown identity {identity!r}; this model knows: {', '.join(avatar.info.names)}")
    frozen = parse_groups(frozen)
    cast = cast_of(avatar, identity_paths, names=[identity])
    frames = first_seconds(cast, 0, seconds)
    lrs = personalize_lrs(cfg, lr)
    cfg_ft = fine_tune_config(cfg, steps, **lrs)
    bg = cfg.render.eval_background
    before = _evaluate(avatar, cast, eval_frames, bg)
    del avatar
    run_dir = Path(out) if out else derived_run_dir(state["path"], f"personalize-{identity}")
    settings = {"frozen": list(frozen), **lrs, "seconds": seconds, "from": state["path"], "from_step": int(state["step"])}
    scope = Scope(frames=frames, frozen=frozen, refresh_occupancy=True, origin={"kind": "personalize", "identity": identity, **settings})
    t0 = time.perf_counter()
    trainer = _run(cfg_ft, cast, run_dir, state, scope, device, progress)
    seconds_taken = time.perf_counter() - t0
    after = _evaluate(trainer.avatar, cast, eval_frames, bg)
    ckpt = checkpoint_path(run_dir, trainer.step)  # written at the end of the run
    result = AdaptResult("personalize", identity, run_dir, ckpt, before, after, steps, len(frames), round(seconds_taken, 2), settings)
    _write_report(result)
    return result


# ---------------------------------------------------------------------------- new identity

def load_new_identity(info: CastInfo, cfg: Config, folder: str | Path) -> Cast:
    """A one-identity cast of ``folder``, checked against a model: same mesh topology, enough
    expression coefficients (exactly E unless the config truncates them), a new name.
    Raises InputError naming the folder."""
    folder = Path(folder)
    E = info.n_expressions
    cast = load_cast([folder], expression_dims=E if cfg.data.expression_dims is not None else None)
    d = cast.identities[0]
    faces = np.asarray(info.faces)
    if d.faces.shape != faces.shape or not np.array_equal(d.faces, faces):
        raise InputError(d.root, f"mesh topology differs from the model's ({d.n_vertices} vertices / {d.faces.shape[0]} faces "
                                 f"vs {np.asarray(info.canonical).shape[0]} / {faces.shape[0]})")
    if cast.n_expressions != E:
        raise InputError(d.root, f"{d.n_expressions} expression coefficients, the model uses {E}")
    if d.name in info.names:
        raise InputError(d.root, f"identity {d.name!r} is already in the model (rename the folder to add it as a new identity)")
    return cast


def grow_checkpoint(state: dict, identity, code: torch.Tensor | None = None) -> dict:
    """Checkpoint dict ``state`` with one more identity appended (no optimizer state).

    The CastInfo gains the name, frame count, folder and neutral mesh; the identity-code
    table [N, d] gains ``code`` (default: the mean of the trained codes — the "average
    person" the network knows best) and the latent table [NF, L] gains one zero row per
    frame of the new sequence. Every existing entry is copied unchanged.
    """
    info = CastInfo.from_dict(state["cast"])
    canon = None
    if info.identity_canonicals is not None:
        canon = np.concatenate([np.asarray(info.identity_canonicals, np.float32), identity.canonical[None].astype(np.float32)])
    grown = dataclasses.replace(info, names=[*info.names, identity.name],
                                frames_per_identity=[*info.frames_per_identity, int(identity.n_frames)],
                                identity_roots=[*info.identity_roots, str(Path(identity.root).resolve())],
                                identity_canonicals=canon)
    model = dict(state["model"])
    codes = model["identity_codes.weight"]
    new = codes.mean(0, keepdim=True) if code is None else code.reshape(1, -1).to(codes)
    model["identity_codes.weight"] = torch.cat([codes, new])
    lat = model["latent_codes.weight"]
    model["latent_codes.weight"] = torch.cat([lat, lat.new_zeros(identity.n_frames, lat.shape[1])])
    return {"step": int(state["step"]), "config": state["config"], "cast": grown.to_dict(), "model": model, "path": state["path"]}


@torch.no_grad()
def occupancy_coverage(avatar, cast: Cast, frames: np.ndarray) -> dict:
    """Share of the vertices of ``frames`` inside the model's marching box and in occupied
    cells of its occupancy grid. Adapting never changes the grid (the other identities must
    render as before), so a head that sticks out of it renders clipped there.
    Returns {"in_box": float, "occupied": float}."""
    pick = frames[np.linspace(0, len(frames) - 1, min(len(frames), 32)).astype(int)]
    v = torch.from_numpy(cast.vertices(pick).reshape(-1, 3)).to(avatar.head_aabb.device)
    in_box = ((v >= avatar.head_aabb[:3]) & (v <= avatar.head_aabb[3:])).all(-1)
    occ = avatar.occupancy
    occupied = occ.bitfield.reshape(-1)[occ.cells_of(v)] & in_box
    return {"in_box": round(float(in_box.float().mean()), 4), "occupied": round(float(occupied.float().mean()), 4)}


@torch.no_grad()
def fill_untrained_latents(avatar, identity: int, trained_local: np.ndarray) -> None:
    """Latent rows of ``identity``'s frames that were not trained take the mean trained row,
    so the identity's mean code (used for held-out and driven frames) is not diluted."""
    off = avatar.info.frame_offset
    rows = avatar.latent_codes.weight[off[identity]: off[identity + 1]]
    mask = torch.zeros(rows.shape[0], dtype=torch.bool, device=rows.device)
    mask[torch.as_tensor(trained_local, device=rows.device)] = True
    rows[~mask] = rows[mask].mean(0)


def add_identity(checkpoint: str | Path, folder: str | Path, *, seconds: float | None = 3.0, steps: int = 300,
                 lr: float | None = None, personalize_steps: int = 0, personalize_lr: float | None = None,
                 out: str | Path | None = None, eval_frames: int | None = None, device=None,
                 progress: bool = True) -> AdaptResult:
    """Add an unseen identity to a trained model from the first seconds of its video.

    Args:
        checkpoint: checkpoint file or run folder. folder: the new identity (our layout or
            INSTA's; same mesh topology and expression size as the model).
        seconds: length of the video used (None: every training frame).
        steps: steps optimising the new identity and latent codes (network frozen).
        lr: their lr (default: the training's ``lr_codes``).
        personalize_steps: then fine-tune the network on the same frames (conditioning
            frozen); > 0 specialises the model, the other identities then render differently.
        personalize_lr: hash-grid lr of that stage (see :func:`personalize_lrs`).
        out: run folder (default ``<base run>.adapt-<name>``).
        eval_frames: held-out frames evaluated before/after (default: all).
    Returns:
        :class:`AdaptResult` (also written to ``<run>/adapt.json``).
    """
    state = load_checkpoint(checkpoint)
    base_avatar, cfg = avatar_from_state(state, device)  # validates the checkpoint against its config
    cast = load_new_identity(base_avatar.info, cfg, folder)
    del base_avatar
    d = cast.identities[0]
    frames = first_seconds(cast, 0, seconds)
    grown = grow_checkpoint(state, d)
    bg = cfg.render.eval_background
    grown_avatar = avatar_from_state(grown, device)[0]
    coverage = occupancy_coverage(grown_avatar, cast, frames)
    if coverage["occupied"] < COVERAGE_WARNING:
        log.warning(f"warning: only {100 * coverage['occupied']:.1f} % of {d.name}'s mesh vertices lie in the model's occupied "
                    f"cells ({100 * coverage['in_box']:.1f} % in its box): parts of this head will render empty; "
                    f"train a model with this identity instead")
    before = _evaluate(grown_avatar, cast, eval_frames, bg)
    del grown_avatar
    lr_codes = float(lr) if lr is not None else cfg.train.lr_codes
    run_dir = Path(out) if out else derived_run_dir(state["path"], f"adapt-{d.name}")
    settings = {"seconds": seconds, "lr_codes": lr_codes, "frozen": list(NETWORK), "from": state["path"],
                "from_step": int(state["step"]), "personalize_steps": int(personalize_steps), "coverage": coverage}
    origin = {"kind": "adapt", "identity": d.name, **settings}
    t0 = time.perf_counter()
    trainer = _run(fine_tune_config(cfg, steps, lr_codes=lr_codes), cast, run_dir, grown,
                   Scope(frames=frames, frozen=NETWORK, refresh_occupancy=False, origin=origin), device, progress)
    k = trainer.avatar.info.names.index(d.name)
    fill_untrained_latents(trainer.avatar, k, cast.frame_local[frames])
    trainer.save()
    if personalize_steps > 0:
        lrs = personalize_lrs(cfg, personalize_lr)
        settings.update({f"personalize_{key}": v for key, v in lrs.items()})
        trainer = _run(fine_tune_config(cfg, personalize_steps, **lrs), cast, run_dir, trainer.state(),
                       Scope(frames=frames, frozen=("conditioning",), refresh_occupancy=True, origin=origin,
                             first_step=trainer.step), device, progress)
        fill_untrained_latents(trainer.avatar, k, cast.frame_local[frames])
        trainer.save()
    seconds_taken = time.perf_counter() - t0
    after = _evaluate(trainer.avatar, cast, eval_frames, bg)
    ckpt = checkpoint_path(run_dir, trainer.step)
    result = AdaptResult("adapt", d.name, run_dir, ckpt, before, after, steps + max(0, personalize_steps), len(frames),
                         round(seconds_taken, 2), settings)
    _write_report(result)
    return result
