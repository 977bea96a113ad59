"""warp-lang set-up shared by every CPU op that uses it (nearest triangle, ray casting).

Initialises warp once, quietly: no banner, no backward code generation, and no
"could not load the CUDA driver" line on CPU-only machines (warp prints it from C at
init; stderr is muted for that call only).
"""
from __future__ import annotations

import os
import sys

_READY = False


def init_warp():
    """Import and initialise warp once; returns the ``warp`` module."""
    global _READY
    import warp as wp

    if not _READY:
        wp.config.log_level = wp.LOG_ERROR
        wp.config.enable_backward = False
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as null:
                os.dup2(null.fileno(), 2)
                wp.init()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        _READY = True
    return wp
