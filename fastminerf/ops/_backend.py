"""Which implementation runs the hot ops: the torch twins, our CUDA kernels, or tcnn.

``resolve_backend("auto")`` picks "cuda" only when ``torch.cuda.is_available()`` AND our
extension (csrc/) builds and loads — never because ``nvcc`` exists. The extension is
compiled lazily on first use (torch.utils.cpp_extension + ninja); importing fastminerf
never compiles anything.
"""
from __future__ import annotations

import importlib
import logging

import torch

from ..errors import InputError

log = logging.getLogger("fastminerf")
_CUDA = None  # None: not tried; False: failed; module: loaded
_CUDA_ERROR = ""


def cuda_ops():
    """The loaded CUDA extension (building it on first call); raises RuntimeError if unavailable."""
    global _CUDA, _CUDA_ERROR
    if _CUDA is None:
        _CUDA = False
        if not torch.cuda.is_available():
            _CUDA_ERROR = "torch.cuda.is_available() is False"
        else:
            try:
                from . import _cuda_ext

                _CUDA = _cuda_ext.load()
            except Exception as e:  # build errors come in many types
                _CUDA_ERROR = f"{type(e).__name__}: {e}"
    if _CUDA is False:
        raise RuntimeError(f"fastminerf CUDA kernels unavailable ({_CUDA_ERROR})")
    return _CUDA


def cuda_available() -> bool:
    try:
        cuda_ops()
        return True
    except RuntimeError:
        return False


def tcnn_available() -> bool:
    try:
        importlib.import_module("tinycudann")
        return torch.cuda.is_available()
    except Exception:
        return False


def resolve_backend(name: str) -> str:
    """"auto" | "cuda" | "tcnn" | "torch" → the backend that will run, logged once."""
    if name not in ("auto", "cuda", "tcnn", "torch"):
        raise InputError(None, f"unknown backend {name!r} (auto, cuda, tcnn, torch)")
    if name == "torch":
        chosen = "torch"
    elif name == "tcnn":
        if not tcnn_available():
            raise InputError(None, "backend 'tcnn' requested but tinycudann does not import (or no GPU)")
        chosen = "tcnn"
    elif cuda_available():
        chosen = "cuda"
    elif name == "cuda":
        raise InputError(None, f"backend 'cuda' requested but unavailable: {_CUDA_ERROR}")
    else:
        chosen = "torch"
    first = (_CUDA_ERROR.strip().splitlines() or [""])[0]  # one line; the full build log is in the cuda_ops() error
    why = "" if chosen != "torch" or name == "torch" else f" (cuda unavailable: {first})"
    log.info("backend: %s%s", chosen, why)
    return chosen


def ops_backend(backend: str) -> str:
    """Backend of the non-encoding ops (marching, nearest triangle, compositing) for a
    resolved model backend: tcnn only encodes, so its other ops use our kernels when they
    load, else the torch twins."""
    if backend == "tcnn":
        return "cuda" if cuda_available() else "torch"
    return backend
