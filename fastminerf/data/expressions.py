"""Expression-coefficient files: one frame per file (the datasets) or a whole sequence
(driving ``render`` / ``preview`` / ``lipsync`` from a file). The one home of their parsing rules."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError


def check_finite(arr: np.ndarray, path: Path, what: str) -> np.ndarray:
    """Return ``arr`` or raise InputError when it holds NaN/inf."""
    if not np.isfinite(arr).all():
        raise InputError(path, f"{what} contain NaN or inf")
    return arr


def read_expression(path: Path) -> np.ndarray:
    """[E] float32 coefficients from a text file (any whitespace layout)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "expression file not found")
    try:
        e = np.loadtxt(path, dtype=np.float32, ndmin=1).ravel()
    except ValueError as err:
        raise InputError(path, f"unreadable expression coefficients ({err})") from None
    if e.size == 0:
        raise InputError(path, "empty expression file")
    return check_finite(e, path, "expression coefficients")


def read_expression_sequence(path: str | Path, n_expressions: int) -> np.ndarray:
    """Expression coefficients per frame from a file: ``.npy`` ([F, E] or one frame [E]) or
    text (one frame per line, whitespace- or comma-separated). Extra columns are dropped
    (as the data loader drops coefficients beyond the model's E).

    Returns:
        [F, n_expressions] float32.
    Raises:
        InputError naming the file (unreadable, NaN/inf, too few coefficients, no frames).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "expression file not found")
    try:
        if path.suffix.lower() == ".npy":
            e = np.load(path, allow_pickle=False)
        else:
            text = path.read_text().replace(",", " ")
            e = np.loadtxt(text.splitlines(), dtype=np.float32, ndmin=2)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise InputError(path, f"unreadable expression file ({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
    e = np.asarray(e, np.float32)
    if e.ndim == 1:
        e = e[None]
    if e.ndim != 2 or e.shape[0] == 0:
        raise InputError(path, f"expressions must be [frames, >= {n_expressions}] coefficients, got shape {list(e.shape)}")
    if e.shape[1] < n_expressions:
        raise InputError(path, f"expressions must be [frames, >= {n_expressions}] coefficients: {e.shape[1]} expression "
                               f"coefficients per frame, the model uses {n_expressions}")
    if not np.isfinite(e).all():
        raise InputError(path, "expression coefficients contain NaN or inf")
    return np.ascontiguousarray(e[:, :n_expressions])
