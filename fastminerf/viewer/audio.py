"""Driving the preview from speech: an audio file (listed with ``preview --audio`` or uploaded
in the page) becomes a driving sequence through the lip-sync model.

The model predicts the mouth and jaw coefficients in the cast's average mouth style; the other
coefficients sit at the model's mean expression. Like every sequence, it drives whichever
identity is selected (mesh from the expression basis).
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..files import atomic_path
from ..lipsync.audio import load_audio
from .sequences import CastSequences, Sequence


def audio_sequence(lip, path: str | Path, info, fps: float = 25.0, name: str | None = None) -> Sequence:
    """An audio file as a :class:`~.sequences.Sequence` of [T, E] expressions at ``fps``
    (T covers the whole audio). Raises InputError for bad audio or a model of another
    expression space."""
    if int(np.max(lip.indices)) >= info.n_expressions:
        raise InputError(None, f"the lip-sync model predicts {lip.n_expressions} coefficients, this avatar has "
                               f"{info.n_expressions}")
    a = load_audio(path)
    mouth = lip.predict(a.samples, a.sample_rate, fps)
    e = np.repeat(np.asarray(info.expr_mean, np.float32)[None], len(mouth), 0)
    e[:, lip.indices] = mouth
    return Sequence(name or f"audio: {Path(path).name}", e, float(fps))


class AudioDriver:
    """Adds audio files to the preview's sequences (listed files at start, uploads later).

    Args:
        lip: a loaded :class:`~fastminerf.lipsync.checkpoint.Lipsync`.
        sequences: the preview's sequences. info: the avatar's CastInfo. fps: playback rate.
    """

    def __init__(self, lip, sequences: CastSequences, info, fps: float = 25.0):
        self.lip, self.sequences, self.info, self.fps = lip, sequences, info, float(fps)
        self.folder = Path(tempfile.mkdtemp(prefix="fastminerf-audio-"))

    def add_file(self, path: str | Path, name: str | None = None) -> str:
        """Predict and add ``path``; returns the sequence name."""
        seq = audio_sequence(self.lip, path, self.info, self.fps, name)
        self.sequences.add(seq)
        return seq.name

    def add_upload(self, filename: str, content: bytes) -> str:
        """An uploaded file (kept in a temporary folder, the name sanitised); returns the sequence name."""
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", Path(filename).name) or "upload"
        path = self.folder / safe
        with atomic_path(path) as tmp:
            tmp.write_bytes(content)
        return self.add_file(path, f"audio: {Path(filename).name}")
