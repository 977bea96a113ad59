"""One error type for bad input: it names the file and the problem in one line.

The CLI catches :class:`InputError` and prints ``error: <file>: <problem>`` with exit
code 2 and no traceback; library users catch it like any exception.
"""
from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad user input (missing file, wrong shape, NaN, mismatched topology...).

    Args:
        path: the file or folder at fault (or None when no single file is to blame).
        problem: what is wrong, as one short sentence.
    """

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)
