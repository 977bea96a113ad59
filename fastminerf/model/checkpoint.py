"""Checkpoints: one file per save, data only, written atomically (temp file + rename).

A checkpoint is one dict of tensors and plain Python types: ``step``, ``config`` (the full
config as a dict), ``cast`` (the model's :class:`~fastminerf.model.cast_info.CastInfo`),
``model`` (state dict), and, for resuming, ``optimizer``, ``scheduler``, ``batcher``,
``rng`` and ``scope``. Files are named ``checkpoints/step-XXXXXXXXX.ckpt`` inside a run
folder.

Checkpoints are shared between people, so they are read with
``torch.load(weights_only=True)``: nothing in the file can run code. A file holding any
other Python object (a pickle with a ``__reduce__``, a class instance) is refused with
one line; checkpoints of fastminerf 0.1.0, which held numpy arrays, are read with numpy's
array reconstructors allow-listed (data, not code).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..files import atomic_path, remove_stale_temps

REQUIRED = ("step", "config", "cast", "model")
#: numpy's array reconstructors, allowed when reading 0.1.0 checkpoints (their CastInfo held arrays)
def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


#: numeric dtypes only: an object array could smuggle objects in
_PLAIN_DTYPES = ("bool", "uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64", "float16", "float32",
                 "float64")
LEGACY_NUMPY_GLOBALS = [(_numpy_reconstruct(), "numpy.core.multiarray._reconstruct"), np.ndarray, np.dtype,
                        *(type(np.dtype(t)) for t in _PLAIN_DTYPES)]


def checkpoint_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / "checkpoints" / f"step-{step:09d}.ckpt"


def save_checkpoint(path: Path, state: dict, keep: int | None = None) -> Path:
    """Write ``state`` to ``path`` via a temp file + rename; keep only the newest ``keep``
    checkpoints of the folder. A crash mid-write leaves the previous files intact."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    if keep:
        for p in sorted(path.parent.glob("step-*.ckpt"))[:-keep]:
            p.unlink(missing_ok=True)
    return path


def clean_checkpoint_folder(run_dir: Path) -> list[Path]:
    """Remove temporary files that killed writers left in ``run_dir/checkpoints``; returns them."""
    return remove_stale_temps(Path(run_dir) / "checkpoints")


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
    """Read a checkpoint (data only) with one-line errors for missing, foreign or unsafe files."""
    p = latest_checkpoint(path)
    try:
        with torch.serialization.safe_globals(LEGACY_NUMPY_GLOBALS):
            state = torch.load(p, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        what = next((ln.strip() for ln in str(e).splitlines() if "GLOBAL" in ln or "allowlisted" in ln), "")
        if not what:  # not a pickle of ours at all
            raise InputError(p, "not a readable checkpoint (UnpicklingError)") from None
        raise InputError(p, "refused: it holds Python objects, not only tensors and plain data, so loading it could "
                            f"run code ({what[:120]})") from None
    except Exception as e:  # zip / format errors come in many types
        raise InputError(p, f"not a readable checkpoint ({type(e).__name__})") from None
    if not isinstance(state, dict) or any(k not in state for k in REQUIRED):
        raise InputError(p, "not a fastminerf checkpoint (missing step/config/cast/model)")
    state["path"] = str(p)
    return state
