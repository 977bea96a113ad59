"""Optional dependencies: imported where they are used, through :func:`require`, which turns
a missing package into one line naming the extra that installs it.

=============  =========================  ============================================
extra          packages                   used by
=============  =========================  ============================================
preprocess     mediapipe 0.10.21, opencv  ``fastminerf preprocess`` (video → identity)
preview        viser                      ``fastminerf preview``, ``train --preview``
=============  =========================  ============================================
"""
from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingExtra


def require(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise :class:`~fastminerf.errors.MissingExtra` saying that
    ``purpose`` needs it and ``pip install -e '.[extra]'`` brings it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(f"{purpose} needs {module.split('.')[0]} ({e}): pip install -e '.[{extra}]'") from None
