"""Checks of command-line values at the edge, each failing as one ``InputError`` line
naming the option (``error: --size: must be >= 1 (got 0)``)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..files import check_folder_path

#: suffixes the video writer understands
VIDEO_SUFFIXES = (".mp4", ".gif")


def at_least(option: str, value, low, optional: bool = True):
    """``value`` when it is >= ``low`` (None passes when ``optional``)."""
    if value is None and optional:
        return value
    if value is None or value < low:
        raise InputError(option, f"must be >= {low} (got {value})")
    return value


def at_most(option: str, value, high):
    """``value`` when it is None or <= ``high``."""
    if value is not None and value > high:
        raise InputError(option, f"must be <= {high} (got {value})")
    return value


def port(option: str, value: int) -> int:
    """A TCP port number, 0 (any free port) to 65535."""
    if not 0 <= value <= 65535:
        raise InputError(option, f"must be a port number in 0..65535 (got {value})")
    return value


def output_file(path: str | Path, suffixes: tuple[str, ...] | None = None) -> Path:
    """An output path whose suffix is one of ``suffixes`` and whose parent can be a folder
    (checked before any work, so a bad ``--out`` fails in a second, not after rendering)."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise InputError(path, f"unsupported output type {path.suffix or '(none)'!r} (use {' or '.join(suffixes)})")
    check_folder_path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, expected a file name")
    return path
