"""fastminerf: one hash-grid radiance field for many people (MI-NeRF on an INSTA-style field).

Install: ``pip install -e .`` (CPU machines take the local torch 2.13.0 CPU build through the
exact pin below). GPU machines with their own torch: ``pip install --no-deps -e .``.
The CUDA kernels in csrc/ are compiled lazily on first GPU use, never at import. To build
them ahead of time instead (into ``fastminerf._C``), on a machine with nvcc and a CUDA
torch: ``FASTMINERF_BUILD_CUDA=1 pip install --no-deps --no-build-isolation -e .``.
"""
import importlib.util
import os
import sys
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
AOT_MODULE = "fastminerf._C"


def _cuda_ext():
    """fastminerf/ops/_cuda_ext.py loaded by path (it imports neither torch nor the package):
    its build_spec() reads csrc/build.json, the definition the lazy JIT build uses too."""
    name = "_fastminerf_setup_cuda_ext"
    spec = importlib.util.spec_from_file_location(name, HERE / "fastminerf" / "ops" / "_cuda_ext.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def cuda_extension_kwargs() -> dict:
    """CUDAExtension arguments from csrc/build.json (sources relative to this file, include
    folders absolute: ninja compiles from the build folder); no torch."""
    spec = _cuda_ext().build_spec()
    return {"name": AOT_MODULE, "sources": [os.path.relpath(p, HERE) for p in spec.sources],
            "include_dirs": [str(p) for p in spec.include_dirs],
            "extra_compile_args": {"cxx": spec.cxx_flags, "nvcc": spec.nvcc_flags}}


def cuda_extension() -> dict:
    """ext_modules/cmdclass for the ahead-of-time build, only when FASTMINERF_BUILD_CUDA=1."""
    if os.environ.get("FASTMINERF_BUILD_CUDA", "0") != "1":
        return {}
    from torch.utils.cpp_extension import BuildExtension, CUDAExtension  # needs torch at build time

    return {"ext_modules": [CUDAExtension(**cuda_extension_kwargs())], "cmdclass": {"build_ext": BuildExtension}}


setup(
    name="fastminerf",
    version="0.1.0",
    description="Multi-identity talking-head NeRF (MI-NeRF) on a mesh-embedded hash-grid field",
    python_requires=">=3.10",
    packages=find_packages(include=["fastminerf", "fastminerf.*"]),
    package_data={"fastminerf": ["configs/*.yaml", "data/preprocess/*.json"]},
    install_requires=[
        # exact pin: our CPU machines install this from local disk; an open range pulls a CUDA build
        "torch==2.13.0",
        "numpy>=1.24",
        "pillow>=9",
        "pyyaml>=6",
        "rich>=13",
        "trimesh>=4",
        "warp-lang>=1.5",
        "imageio>=2.30",
        "imageio-ffmpeg>=0.5",
        # KD-tree lookups in the synthetic cast (freckle patterns: 5 ms per frame instead of 170 ms brute force)
        "scipy>=1.10",
    ],
    extras_require={
        "test": ["pytest>=7", "nerfacc==0.5.3", "viser==1.1.1"],
        # benchmarks/train_time.py plots (PNG); the benchmarks run without it with --no-plot
        "bench": ["matplotlib>=3.5"],
        # `fastminerf preprocess` (video → identity). MediaPipe 0.10.21 is the last release that
        # bundles the face-mesh / face-detection / selfie-segmentation models (offline); it needs
        # numpy<2 and protobuf<5. OpenCV 4.x (5.x dropped the Haar cascades).
        "preprocess": [
            "mediapipe==0.10.21",
            "protobuf>=4.25,<5",
            "numpy>=1.24,<2",
            "opencv-contrib-python>=4.8,<5",
            "scipy>=1.10",
        ],
        # fastminerf preview / train --preview: the wheel carries the built web client (works offline)
        "preview": ["viser==1.1.1"],
    },
    entry_points={"console_scripts": ["fastminerf=fastminerf.cli:main"]},
    **cuda_extension(),
)
