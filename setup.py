"""Build script beside pyproject.toml (which holds the metadata, dependencies and version).

It does what needs code: the package list with ``configs/`` and ``csrc/`` shipped inside the
wheel (``fastminerf/configs``, ``fastminerf/csrc``; in the repository they stay top-level
folders), and the optional ahead-of-time CUDA build.

Install: ``pip install -e .`` (CPU machines take the local torch 2.13.0 CPU build through the
exact pin). GPU machines with their own torch: ``pip install --no-deps -e .``. The CUDA
kernels in csrc/ are compiled lazily on first GPU use, never at import. To build them ahead
of time instead (into ``fastminerf._C``), on a machine with nvcc and a CUDA torch:
``FASTMINERF_BUILD_CUDA=1 pip install --no-deps --no-build-isolation -e .``.
"""
import importlib.util
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
AOT_MODULE = "fastminerf._C"
#: folders shipped inside the package: package name → folder in the repository
RESOURCE_PACKAGES = {"fastminerf.configs": "configs", "fastminerf.configs.variants": "configs/variants",
                     "fastminerf.csrc": "csrc"}


def _cuda_ext():
    """fastminerf/ops/_cuda_ext.py loaded by path (its top level imports neither torch nor the
    package): its build_spec() reads csrc/build.json, the definition the lazy JIT build uses too."""
    name = "_fastminerf_setup_cuda_ext"
    spec = importlib.util.spec_from_file_location(name, HERE / "fastminerf" / "ops" / "_cuda_ext.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def cuda_extension_kwargs() -> dict:
    """CUDAExtension arguments from csrc/build.json (sources relative to this file, include
    folders absolute: ninja compiles from the build folder); no torch."""
    spec = _cuda_ext().build_spec(HERE / "csrc")
    return {"name": AOT_MODULE, "sources": [os.path.relpath(p, HERE) for p in spec.sources],
            "include_dirs": [str(p) for p in spec.include_dirs],
            "extra_compile_args": {"cxx": spec.cxx_flags, "nvcc": spec.nvcc_flags}}


def cuda_extension() -> dict:
    """ext_modules/cmdclass for the ahead-of-time build, only when FASTMINERF_BUILD_CUDA=1."""
    if os.environ.get("FASTMINERF_BUILD_CUDA", "0") != "1":
        return {}
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension  # needs torch at build time

    return {"ext_modules": [CUDAExtension(**cuda_extension_kwargs())], "cmdclass": {"build_ext": BuildExtension}}


if __name__ == "__main__":
    setup(
        packages=find_packages(include=["fastminerf", "fastminerf.*"]) + list(RESOURCE_PACKAGES),
        package_dir=RESOURCE_PACKAGES,
        package_data={
            "fastminerf.configs": ["*.yaml"],
            "fastminerf.configs.variants": ["*.yaml"],
            "fastminerf.csrc": ["*.cu", "*.cuh", "*.h", "*.cpp", "*.json", "*.md"],
            "fastminerf.data.preprocess": ["*.json"],
        },
        **cuda_extension(),
    )
