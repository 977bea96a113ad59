"""Writing files so that a crash never leaves a half-written one: temp file, then rename.

Every file fastminerf writes that someone may read later (checkpoints, metrics, videos,
images, datasets' JSON) goes through :func:`atomic_path`: the content is written to a
hidden temporary name in the same folder and renamed over the target only when complete
(``os.replace`` is atomic on POSIX and Windows). Temporary names carry the writer's pid,
so :func:`remove_stale_temps` can clean those left by killed processes.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError

#: marker in every temporary name (``.<name>.tmp-<pid><suffix>``)
TEMP_TAG = ".tmp-"


def temp_name(path: Path) -> Path:
    """The temporary sibling of ``path`` this process writes to (same suffix, so writers
    that pick a format by extension still work)."""
    return path.with_name(f".{path.stem}{TEMP_TAG}{os.getpid()}{path.suffix}")


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Context manager yielding a temporary path to write ``path``'s content to; on success
    it is renamed over ``path``, on any exception removed (``path`` is left untouched).

    Example::

        with atomic_path("out/metrics.json") as tmp:
            tmp.write_text(text)
    """
    path = Path(path)
    make_parent(path)
    tmp = temp_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def check_folder_path(path: str | Path) -> None:
    """An :class:`InputError` naming ``path`` when one of its existing ancestors is a file."""
    for p in reversed(Path(path).parents):
        if p.exists() and not p.is_dir():
            raise InputError(path, f"cannot write here: {p} is a file, not a folder")


def make_parent(path: str | Path) -> None:
    """Create ``path``'s parent folders; a file in the way is an :class:`InputError` naming it."""
    check_folder_path(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically; returns ``path``."""
    return write_text(path, json.dumps(obj, indent=indent))


def temp_dir(path: str | Path) -> Path:
    """A fresh, empty hidden sibling folder of ``path`` to build a whole folder in (see
    :func:`commit_dir`); a leftover of the same process is removed first."""
    path = Path(path)
    tmp = path.parent / f".{path.name}{TEMP_TAG}{os.getpid()}"
    make_parent(tmp)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def commit_dir(tmp: Path, path: str | Path) -> Path:
    """Move the finished folder ``tmp`` (from :func:`temp_dir`) to ``path``, replacing what
    was there; returns ``path``."""
    path = Path(path)
    if path.exists():
        shutil.rmtree(path)
    Path(tmp).rename(path)
    return path


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Remove temporary files and folders of :func:`atomic_path` / :func:`temp_dir` in
    ``folder`` whose writer process is gone (killed mid-write); returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for p in folder.glob(f".*{TEMP_TAG}*"):
        pid = p.name.split(TEMP_TAG, 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
