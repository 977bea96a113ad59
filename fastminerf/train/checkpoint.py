"""Checkpoints: one file per save, written atomically (temp file + rename).

A checkpoint is one dict: ``step``, ``config`` (the full config as a dict), ``cast`` (the
model's :class:`~fastminerf.model.avatar.CastInfo`), ``model`` (state dict), and, for
resuming, ``optimizer``, ``scheduler``, ``batcher`` and ``rng`` states. Files are named
``checkpoints/step-XXXXXXXXX.ckpt`` inside a run folder.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError

REQUIRED = ("step", "config", "cast", "model")


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:09d}.ckpt"


def save_checkpoint(path: Path, state: dict, keep: int | None = None) -> Path:
    """Write ``state`` to ``path`` via a temp file + rename; keep only the newest ``keep``
    checkpoints of the folder. A crash mid-write leaves the previous files intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if keep:
        old = sorted(path.parent.glob("step-*.ckpt"))[:-keep]
        for p in old:
            p.unlink(missing_ok=True)
    return path


def latest_checkpoint(path: str | Path) -> Path:
    """A checkpoint file from a path: the file itself, or the newest in a run folder."""
    p = Path(path)
    if p.is_file():
        return p
    for cand in (p / "checkpoints", p):
        if cand.is_dir():
            files = sorted(cand.glob("step-*.ckpt"))
            if files:
                return files[-1]
    raise InputError(p, "no checkpoint found (give a .ckpt file or a run folder)")


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Read a checkpoint with one-line errors for missing or foreign files."""
    p = latest_checkpoint(path)
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as e:  # pickle/zip errors come in many types
        raise InputError(p, f"not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise InputError(p, "not a fastminerf checkpoint (missing step/config/cast/model)")
    state["path"] = str(p)
    return state
