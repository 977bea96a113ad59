"""The errors fastminerf reports to users as one line (no traceback).

The CLI catches :class:`FastMinerfError` and prints ``error: <message>`` with the error's
``exit_code``: 2 for bad input (:class:`InputError`, which names the file and the problem),
3 for a training run that diverged (:class:`TrainingDiverged`). Library users catch them
like any exception.
"""
from __future__ import annotations

from pathlib import Path


class FastMinerfError(Exception):
    """Base of the errors printed as one line by the CLI; ``exit_code`` is its exit status."""

    exit_code = 1


class InputError(FastMinerfError):
    """Bad user input (missing file, wrong shape, NaN, mismatched topology...).

    Args:
        path: the file or folder at fault (or None when no single file is to blame).
        problem: what is wrong, as one short sentence.
    """

    exit_code = 2

    def __init__(self, path: str | Path | None, problem: str):
        self.path = None if path is None else str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class TrainingDiverged(FastMinerfError):
    """Training produced NaN/inf for many steps in a row (the input was fine; the run was not)."""

    exit_code = 3


class MissingExtra(FastMinerfError):
    """An optional dependency is not installed; the message names the extra that brings it."""

    exit_code = 2
