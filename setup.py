"""fastminerf: one hash-grid radiance field for many people (MI-NeRF on an INSTA-style field).

Install: ``pip install -e .`` (CPU machines take the local torch 2.13.0 CPU build through the
exact pin below). GPU machines with their own torch: ``pip install --no-deps -e .``.
The CUDA kernels in csrc/ are compiled lazily on first GPU use, never at import.
"""
from setuptools import find_packages, setup

setup(
    name="fastminerf",
    version="0.1.0",
    description="Multi-identity talking-head NeRF (MI-NeRF) on a mesh-embedded hash-grid field",
    python_requires=">=3.10",
    packages=find_packages(include=["fastminerf", "fastminerf.*"]),
    package_data={"fastminerf": ["configs/*.yaml"]},
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
        # fastminerf preview / train --preview: the wheel carries the built web client (works offline)
        "preview": ["viser==1.1.1"],
    },
    entry_points={"console_scripts": ["fastminerf=fastminerf.cli:main"]},
)
