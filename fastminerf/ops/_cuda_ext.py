"""Building and loading the CUDA extension (csrc/).

:func:`load` is called by :func:`fastminerf.ops._backend.cuda_ops` on first use, never at
import. It returns :class:`~fastminerf.ops._cuda_ops.CudaOps` over the compiled module:

1. an ahead-of-time build (``FASTMINERF_BUILD_CUDA=1 pip install --no-build-isolation -e .``
   puts ``fastminerf._C`` next to the package) is used when it imports;
2. otherwise ``torch.utils.cpp_extension.load`` compiles csrc/ with ninja into a cache
   folder (``$FASTMINERF_CUDA_CACHE``, default ``~/.cache/fastminerf/cuda/<torch>-<cuda>``);
   torch re-builds when a source changes and holds a file lock while building, so
   concurrent processes wait for one build. A GPU takes ~1-2 min the first time.

What is compiled, and with which flags, is defined once in csrc/build.json and read by
:func:`build_spec` here and by setup.py (which loads this file by path, so nothing at this
module's top level may import torch or the package). The kernels include no torch header
(they compile with plain ``nvcc -c``; see :func:`kernel_sources` and
tests/test_cuda_ops.py); torch_ops.cpp adapts tensors and bindings.cpp only binds.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("fastminerf")
NAME = "fastminerf_cuda"
BUILD_FILE = "build.json"


class BuildSpec(NamedTuple):
    """The extension as csrc/build.json defines it (absolute paths)."""

    kernels: list[Path]
    adapters: list[Path]
    include_dirs: list[Path]
    nvcc_flags: list[str]
    cxx_flags: list[str]

    @property
    def sources(self) -> list[Path]:
        """Everything compiled into the extension: kernels, then torch adapters and bindings."""
        return self.kernels + self.adapters


def csrc_dir() -> Path:
    """The csrc/ folder: the repository's, or the copy inside an installed wheel."""
    from ..resources import resource_dir  # here, not at the top: setup.py loads this file without the package

    return resource_dir("csrc")


def build_spec(csrc: Path | None = None) -> BuildSpec:
    """Read csrc/build.json, the single definition of the sources and flags of both builds
    (``csrc``: the folder, default :func:`csrc_dir`; setup.py passes the repository's)."""
    csrc = Path(csrc) if csrc is not None else csrc_dir()
    path = csrc / BUILD_FILE
    if not path.is_file():
        raise RuntimeError(f"{path} not found (csrc/ is missing: install from a source checkout)")
    d = json.loads(path.read_text())
    return BuildSpec([csrc / f for f in d["kernels"]], [csrc / f for f in d["adapters"]],
                     [csrc / f for f in d["include_dirs"]], list(d["nvcc_flags"]), list(d["cxx_flags"]))


def kernel_sources() -> list[Path]:
    """The plain-CUDA kernel files (no torch headers)."""
    return build_spec().kernels


def all_sources() -> list[Path]:
    """Everything compiled into the extension: kernels, torch adapters, bindings."""
    return build_spec().sources


def jit_kwargs() -> dict:
    """The build arguments :func:`load` passes to ``torch.utils.cpp_extension.load``
    (besides name, build folder and verbosity)."""
    spec = build_spec()
    return {"sources": [str(p) for p in spec.sources], "extra_cflags": spec.cxx_flags,
            "extra_cuda_cflags": spec.nvcc_flags, "extra_include_paths": [str(p) for p in spec.include_dirs]}


def cache_dir() -> Path:
    """Where the JIT build goes: $FASTMINERF_CUDA_CACHE or ~/.cache/fastminerf/cuda/<torch>-<cuda>."""
    env = os.environ.get("FASTMINERF_CUDA_CACHE")
    if env:
        return Path(env)
    import torch

    tag = f"torch{torch.__version__.split('+')[0]}-cu{(torch.version.cuda or 'none').replace('.', '')}"
    return Path.home() / ".cache" / "fastminerf" / "cuda" / tag


def _aot_module():
    """The ahead-of-time build fastminerf._C, or None when there is none."""
    try:
        from .. import _C  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _C


def load(verbose: bool | None = None):
    """Compile (if needed) and load the kernels; returns a CudaOps. Raises on build errors."""
    import torch

    from ._cuda_ops import CudaOps

    if not torch.cuda.is_available():
        raise RuntimeError("torch.cuda.is_available() is False")
    mod = _aot_module()
    if mod is not None:
        log.info("fastminerf CUDA kernels: ahead-of-time build %s", getattr(mod, "__file__", "?"))
        return CudaOps(mod)
    kwargs = jit_kwargs()  # raises when csrc/ is missing
    from torch.utils.cpp_extension import load as cpp_load

    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    verbose = bool(int(os.environ.get("FASTMINERF_VERBOSE_BUILD", "0"))) if verbose is None else verbose
    t0 = time.perf_counter()
    mod = cpp_load(name=NAME, build_directory=str(build), verbose=verbose, **kwargs)
    log.info("fastminerf CUDA kernels: loaded from %s in %.1f s", build, time.perf_counter() - t0)
    return CudaOps(mod)
