"""The lip-sync model file: one dict of tensors and plain Python values, loadable with
``torch.load(weights_only=True)`` (nothing pickled), written atomically (temp + rename).

Keys: ``format``, ``state`` (the network's state dict), ``config`` (the
:class:`~fastminerf.lipsync.train.LipsyncConfig` as a dict), ``in_dim``, ``coefficients``
(the K predicted coefficient names), ``coefficient_indices`` (their columns among the
cast's E), ``expression_names`` (E), ``jaw`` (index of the jaw-open coefficient among the K,
or -1), ``speakers`` (training identity names, the rows of the speaker-code table),
``speaker_mean`` / ``speaker_std`` ([S][K] each speaker's mouth style: with per-speaker
target normalisation the net predicts standardised values that these scale back),
``steps``, ``metrics``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..files import atomic_path
from .features import audio_features, check_kind, n_video_frames
from .model import AudioToExpression

FORMAT = "fastminerf-lipsync-1"


@dataclass
class Lipsync:
    """A trained audio → expression model and what it predicts.

    Attributes:
        net: the network (eval mode). features: feature kind ("mel" / "mel+phones").
        coefficients: K names; indices: [K] their columns among the cast's E coefficients.
        n_expressions: E. jaw: index of jaw-open among the K (-1: none). speakers: training
        identity names. meta: the whole file content except the weights.
    """

    net: AudioToExpression
    features: str
    coefficients: list[str]
    indices: np.ndarray
    n_expressions: int
    jaw: int
    speakers: list[str]
    meta: dict

    def speaker_index(self, name: str | None) -> int:
        """Row of ``name``'s speaker code, or the "anyone" row for an unknown name / None."""
        return self.speakers.index(name) if name in self.speakers else self.net.anyone

    def style(self, name: str | None) -> tuple[np.ndarray, np.ndarray]:
        """(mean [K], std [K]) of ``name``'s mouth coefficients: a training identity's own
        (per-speaker target normalisation), else the whole cast's."""
        if self.meta["config"].get("target_norm") == "speaker" and name in self.speakers:
            k = self.speakers.index(name)
            return np.asarray(self.meta["speaker_mean"][k], np.float32), np.asarray(self.meta["speaker_std"][k], np.float32)
        return self.net.target_mean.numpy(), self.net.target_std.numpy()

    @torch.no_grad()
    def predict_features(self, features: np.ndarray, speaker: str | None = None, style=None) -> np.ndarray:
        """features [T, D] → [T, K] float32 coefficients, in the mouth style of ``speaker``
        (a training identity's name, or None: anyone) or of an explicit ``style`` = (mean [K],
        std [K]) — e.g. an identity's own tracked statistics."""
        x = torch.from_numpy(np.ascontiguousarray(features, np.float32))[None]
        s = torch.tensor([self.speaker_index(speaker)])
        mu, sd = style if style is not None else self.style(speaker)
        return (self.net(x, s)[0].numpy() * sd + mu).astype(np.float32)

    def predict(self, samples: np.ndarray, sample_rate: int, fps: float, n_frames: int | None = None,
                speaker: str | None = None, style=None) -> np.ndarray:
        """Audio samples [N] → [T, K] coefficients for video frames at k / fps (T defaults to
        every frame inside the audio)."""
        if n_frames is None:
            n_frames = n_video_frames(samples.shape[0] / sample_rate, fps)
        feats = audio_features(samples, sample_rate, fps, n_frames, self.features)
        return self.predict_features(feats, speaker, style)


def save_lipsync(path: str | Path, net: AudioToExpression, meta: dict) -> Path:
    """Write the model file (temp file + ``os.replace``)."""
    path = Path(path)
    state = {"format": FORMAT, **meta, "state": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_lipsync(path: str | Path) -> Lipsync:
    """Read a model file (``torch.load(weights_only=True)``); InputError naming the file for
    missing, unreadable or foreign files."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "lip-sync model not found (train one with fastminerf lipsync-train)")
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # zip / unpickling errors come in many types
        raise InputError(path, f"not a readable lip-sync model ({type(e).__name__})") from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InputError(path, f"not a fastminerf lip-sync model (format {d.get('format') if isinstance(d, dict) else None!r})")
    cfg = d["config"]
    check_kind(cfg["features"])
    net = AudioToExpression(int(d["in_dim"]), len(d["coefficients"]), cfg["hidden"], tuple(cfg["dilations"]),
                            cfg["causal"], len(d["speakers"]), cfg["speaker_dim"], cfg["dropout"])
    try:
        net.load_state_dict(d["state"])
    except RuntimeError as e:
        raise InputError(path, f"weights do not match the model's config ({str(e).splitlines()[0]})") from None
    meta = {k: v for k, v in d.items() if k != "state"}
    return Lipsync(net.eval(), cfg["features"], list(d["coefficients"]), np.asarray(d["coefficient_indices"], np.int64),
                   int(len(d["expression_names"])), int(d["jaw"]), list(d["speakers"]), meta)
