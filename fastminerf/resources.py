"""Folders the package ships besides its modules: ``configs/`` (presets) and ``csrc/``
(CUDA sources).

In the repository they are top-level folders; a wheel carries them inside the package
(``fastminerf/configs``, ``fastminerf/csrc``, mapped by ``package_dir`` in pyproject.toml).
:func:`resource_dir` finds either, so an editable install and an installed wheel read the
same files.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO_TOP = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder ``name`` ("configs" or "csrc"): inside the installed package when it is
    there (a wheel), else the repository's top-level folder (a source checkout)."""
    shipped = Path(str(resources.files("fastminerf").joinpath(name)))
    if shipped.is_dir():
        return shipped
    return _REPO_TOP / name
