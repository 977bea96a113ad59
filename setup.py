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
import os
from pathlib import Path

from setuptools import find_packages, setup

#: folders shipped inside the package: package name → folder in the repository
RESOURCE_PACKAGES = {"fastminerf.configs": "configs", "fastminerf.configs.variants": "configs/variants",
                     "fastminerf.csrc": "csrc"}


def cuda_extension() -> dict:
    """ext_modules/cmdclass for the ahead-of-time build, only when FASTMINERF_BUILD_CUDA=1."""
    if os.environ.get("FASTMINERF_BUILD_CUDA", "0") != "1":
        return {}
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension  # needs torch at build time

    csrc = Path(__file__).resolve().parent / "csrc"
    sources = sorted(str(p.relative_to(csrc.parent)) for p in [*csrc.glob("*.cu"), *csrc.glob("*.cpp")])
    ext = CUDAExtension("fastminerf._C", sources, include_dirs=[str(csrc)],
                        extra_compile_args={"cxx": ["-O3"], "nvcc": ["-O3", "-lineinfo"]})
    return {"ext_modules": [ext], "cmdclass": {"build_ext": BuildExtension}}


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
