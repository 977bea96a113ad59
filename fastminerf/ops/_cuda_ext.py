"""Building and loading the CUDA extension (csrc/).

:func:`load` is called by :func:`fastminerf.ops._backend.cuda_ops` on first use, never at
import. It returns :class:`~fastminerf.ops._cuda_ops.CudaOps` over the compiled module:

1. an ahead-of-time build (``FASTMINERF_BUILD_CUDA=1 pip install --no-build-isolation -e .``
   puts ``fastminerf._C`` next to the package) is used when it imports;
2. otherwise ``torch.utils.cpp_extension.load`` compiles csrc/ with ninja into a cache
   folder (``$FASTMINERF_CUDA_CACHE``, default ``~/.cache/fastminerf/cuda/<torch>-<cuda>``);
   torch re-builds when a source changes and holds a file lock while building, so
   concurrent processes wait for one build. A GPU takes ~1-2 min the first time.

The .cu files include no torch header (they compile with plain ``nvcc -c``; see
:func:`kernel_sources` and tests/test_cuda_ops.py); torch_ops.cpp adapts tensors and
bindings.cpp only binds.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..resources import resource_dir

log = logging.getLogger("fastminerf")
CSRC = resource_dir("csrc")  # the repository's csrc/, or the copy inside an installed wheel
NAME = "fastminerf_cuda"
NVCC_FLAGS = ["-O3", "-lineinfo"]  # no --use_fast_math: marching and nearest need IEEE rounding
CXX_FLAGS = ["-O3"]


def kernel_sources() -> list[Path]:
    """The plain-CUDA kernel files (no torch headers)."""
    return sorted(CSRC.glob("*.cu"))


def all_sources() -> list[Path]:
    """Everything compiled into the extension: kernels, torch adapters, bindings."""
    return kernel_sources() + sorted(CSRC.glob("*.cpp"))


def cache_dir() -> Path:
    env = os.environ.get("FASTMINERF_CUDA_CACHE")
    if env:
        return Path(env)
    import torch

    tag = f"torch{torch.__version__.split('+')[0]}-cu{(torch.version.cuda or 'none').replace('.', '')}"
    return Path.home() / ".cache" / "fastminerf" / "cuda" / tag


def _aot_module():
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
    if not CSRC.is_dir():
        raise RuntimeError(f"csrc/ not found at {CSRC} (install from a source checkout)")
    from torch.utils.cpp_extension import load as cpp_load

    build = cache_dir()
    build.mkdir(parents=True, exist_ok=True)
    verbose = bool(int(os.environ.get("FASTMINERF_VERBOSE_BUILD", "0"))) if verbose is None else verbose
    t0 = time.perf_counter()
    mod = cpp_load(name=NAME, sources=[str(p) for p in all_sources()], extra_cflags=CXX_FLAGS,
                   extra_cuda_cflags=NVCC_FLAGS, extra_include_paths=[str(CSRC)], build_directory=str(build),
                   verbose=verbose)
    log.info("fastminerf CUDA kernels: loaded from %s in %.1f s", build, time.perf_counter() - t0)
    return CudaOps(mod)
