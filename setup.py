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
    ],
    extras_require={
        "test": ["pytest>=7", "nerfacc==0.5.3"],
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
    },
    entry_points={"console_scripts": ["fastminerf=fastminerf.cli:main"]},
)
