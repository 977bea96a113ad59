"""Driving sequences for the preview: an identity's tracked expressions (and mesh motion)
from the cast, or an expressions file.

A sequence drives whichever identity is selected: its expression coefficients condition
the field, and its meshes move that identity's neutral mesh by delta transfer
(``neutral_A + (mesh_B,t − neutral_B)``, as in :mod:`fastminerf.render.transfer`). A file
carries expressions only; the mesh then comes from the expression basis.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.cast import expand_identity_paths, read_any_identity
from ..data.expressions import read_expression_sequence

log = logging.getLogger("fastminerf")


@dataclass
class Sequence:
    """F frames of expressions, optionally with the driver's tracked meshes.

    Attributes:
        name: shown in the "expressions from" selector.
        expressions: [F, E] float32 raw coefficients.
        fps: playback rate.
        vertices: optional [F, V, 3] driver meshes (may be a memmap). neutral: [V, 3] the
            driver's neutral mesh (with ``vertices``).
    """

    name: str
    expressions: np.ndarray
    fps: float
    vertices: np.ndarray | None = None
    neutral: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.expressions.shape[0])

    def frame(self, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """(expression [E], mesh offset [V, 3] from the driver's neutral mesh, or None)."""
        t = int(t) % len(self)
        delta = None
        if self.vertices is not None:
            delta = np.asarray(self.vertices[t], np.float32) - self.neutral
        return np.asarray(self.expressions[t], np.float32), delta


def identity_sequence(data, n_expressions: int) -> Sequence:
    """The whole tracked sequence of an :class:`~fastminerf.data.identity.IdentityData`."""
    return Sequence(data.name, np.asarray(data.expressions, np.float32)[:, :n_expressions], float(data.fps or 25.0),
                    data.vertices, np.asarray(data.canonical, np.float32))


class CastSequences:
    """Identities' sequences, read on first use from their folders (or given in memory).

    Args:
        roots: {name: identity folder} — names whose folder is gone are left out.
        n_expressions: E of the model (longer sequences are truncated).
        loaded: {name: IdentityData} already in memory (live training).
    """

    def __init__(self, roots: dict[str, str | Path], n_expressions: int, loaded: dict | None = None):
        self.n_expressions = n_expressions
        self._loaded = {k: identity_sequence(v, n_expressions) for k, v in (loaded or {}).items()}
        self._roots = {k: Path(v) for k, v in roots.items() if k not in self._loaded and Path(v).is_dir()}
        self._extra: dict[str, Sequence] = {}

    @property
    def names(self) -> list[str]:
        """Selectable sequence names (cast identities first, then files)."""
        return [*self._loaded, *self._roots, *self._extra]

    def add(self, seq: Sequence) -> None:
        self._extra[seq.name] = seq

    def get(self, name: str) -> Sequence:
        if name in self._extra:
            return self._extra[name]
        if name not in self._loaded:
            self._loaded[name] = identity_sequence(read_any_identity(self._roots.pop(name)), self.n_expressions)
        return self._loaded[name]


def load_expressions_file(path: str | Path, n_expressions: int, fps: float = 25.0) -> Sequence:
    """An expressions file as a sequence (parsing rules of
    :func:`fastminerf.data.expressions.read_expression_sequence`).

    Raises:
        InputError: missing file, unreadable content, wrong shape, non-finite values.
    """
    e = read_expression_sequence(path, n_expressions)
    return Sequence(f"file: {Path(path).name}", e, fps)


def sequences_for(info, identity_paths: list | None = None) -> CastSequences:
    """The cast's sequences of a checkpoint: from the folders it was trained on, or from
    ``identity_paths`` (identity folders or folders of them) when they moved. Identities
    whose folder is gone are simply not offered."""
    if identity_paths:
        roots = {p.name: p for p in expand_identity_paths(identity_paths) if p.name in info.names}
    else:
        roots = dict(zip(info.names, info.identity_roots))
    return CastSequences(roots, info.n_expressions)
