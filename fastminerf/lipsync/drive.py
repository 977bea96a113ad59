"""Audio → a full expression sequence for identity A of a cast, and its rendering.

The lip-sync model predicts the K mouth coefficients in A's own mouth style (the mean and
spread of A's tracked mouth coefficients); every other coefficient and the head pose come
from A's own frames, either looped (played forward and back, so there is no jump) or held
still on A's first training frame. Frame k is at time k / fps (fps = A's video rate) and the
sequence covers the whole audio.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from ..errors import InputError
from ..files import atomic_path
from ..render.transfer import expression_frames
from ..render.views import ViewCamera, background_color, render_view
from .audio import Audio
from .checkpoint import Lipsync
from .features import n_video_frames
from .train import speaker_style

POSE_MODES = ("loop", "hold")


@dataclass
class DrivenSequence:
    """What drives each rendered frame.

    Attributes:
        identity: A's name. fps: frame rate. expressions: [T, E] float32 full coefficients.
        mouth: [T, K] the predicted mouth coefficients (columns ``indices`` of expressions).
        source_frames: [T] global cast frames of A that give the pose and the other coefficients.
        timings: seconds of feature extraction + inference ("predict_s") and audio length.
    """

    identity: str
    fps: float
    expressions: np.ndarray
    mouth: np.ndarray
    indices: np.ndarray
    source_frames: np.ndarray
    timings: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.expressions.shape[0])


def loop_indices(n: int, length: int, mode: str = "loop") -> np.ndarray:
    """[n] indices into a sequence of ``length`` frames: forward-and-back ("loop") or all 0 ("hold")."""
    if mode not in POSE_MODES:
        raise InputError(None, f"pose must be one of {', '.join(POSE_MODES)} (got {mode!r})")
    if mode == "hold" or length == 1:
        return np.zeros(n, np.int64)
    period = 2 * (length - 1)
    k = np.arange(n) % period
    return np.where(k < length, k, period - k).astype(np.int64)


def check_compatible(lip: Lipsync, cast, path=None) -> None:
    """InputError when the lip-sync model predicts another expression space than the cast's."""
    names = list(cast.expression_names)
    want = list(lip.meta["expression_names"])
    if int(lip.indices.max()) >= cast.n_expressions or (any(names) and names != want[: len(names)]):
        raise InputError(path, f"this lip-sync model predicts coefficients of another expression space "
                               f"({len(want)} coefficients, e.g. {want[:3]}) than the cast's ({cast.n_expressions}, "
                               f"e.g. {names[:3]}); train one on this cast with fastminerf lipsync-train")


def drive_expressions(lip: Lipsync, audio: Audio, cast, identity: str, pose: str = "loop", smooth: float = 0.0,
                      fps: float | None = None) -> DrivenSequence:
    """Expressions for ``identity`` (a cast name) speaking ``audio``.

    Args:
        pose: "loop" (A's frames forward and back give the pose and the other coefficients)
            or "hold" (A's first training frame throughout).
        smooth: Gaussian smoothing of the predicted mouth coefficients over time (std in frames).
        fps: frame rate (default: A's video's).
    """
    if smooth < 0:
        raise InputError(None, f"--smooth must not be negative (got {smooth})")
    a = cast.index(identity)
    check_compatible(lip, cast)
    fps = float(fps or cast.identities[a].fps or 25.0)
    frames = cast.frames("all", a) if pose == "loop" else cast.frames("train", a)[:1]
    own = cast.expressions[cast.frames("train", a)][:, lip.indices]
    t0 = time.perf_counter()
    n = n_video_frames(audio.duration, fps)
    speaker = identity if identity in lip.speakers else None
    mouth = lip.predict(audio.samples, audio.sample_rate, fps, n, speaker, style=speaker_style(own))
    predict_s = time.perf_counter() - t0
    if smooth > 0:
        mouth = gaussian_filter1d(mouth, smooth, axis=0, mode="nearest").astype(np.float32)
    lo, hi = own.min(0), own.max(0)
    span = hi - lo
    mouth = np.clip(mouth, lo - 0.25 * span, hi + 0.25 * span)  # stay near A's own range
    src = frames[loop_indices(n, len(frames), pose)]
    e = np.array(cast.expressions[src], np.float32)
    e[:, lip.indices] = mouth
    return DrivenSequence(identity, fps, e, mouth, lip.indices, src,
                          {"predict_s": predict_s, "audio_s": audio.duration})


def render_driven(avatar, cast, seq: DrivenSequence, size: int | None = None, background: str | None = None,
                  chunk: int = 32):
    """Yield [H, W, 3] uint8 frames of ``seq``: meshes from the checkpoint's expression basis
    (A's neutral mesh + Σ e_k · basis_k), cameras of the source frames (A's head poses)."""
    a = cast.index(seq.identity)
    bg = background_color(background or avatar.rc.eval_background, avatar.canonical.device)
    for lo in range(0, seq.n_frames, chunk):
        hi = min(seq.n_frames, lo + chunk)
        fb, _, _ = expression_frames(avatar, cast, a, seq.expressions[lo:hi])
        src = seq.source_frames[lo:hi]
        c2h, K = torch.from_numpy(cast.cam_to_head[src]), torch.from_numpy(cast.intrinsics[src])
        for j in range(hi - lo):
            with torch.no_grad():
                yield render_view(avatar, ViewCamera(c2h[j], K[j], cast.height, cast.width), int(fb.identity[j]),
                                  fb.expression[j], fb.latent[j], size, vertices=fb.vertices[j], background=bg)


def save_expressions(path: str | Path, expressions: np.ndarray) -> Path:
    """[T, E] float32 .npy (temp file + rename); ``fastminerf render --expressions`` reads it."""
    path = Path(path)
    if path.suffix != ".npy":
        raise InputError(path, "--save-expressions needs a .npy file name")
    with atomic_path(path) as tmp:
        np.save(tmp, np.asarray(expressions, np.float32))
    return path


def lipsync_model_path(checkpoint: str | Path, model: str | Path | None = None) -> Path:
    """``model`` when given, else ``lipsync.pt`` in the run folder of ``checkpoint`` (a run
    folder or a checkpoints/step-*.ckpt file inside one)."""
    if model is not None:
        return Path(model)
    p = Path(checkpoint)
    run = p if p.is_dir() else (p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    cand = run / "lipsync.pt"
    if not cand.is_file():
        raise InputError(cand, "no lip-sync model beside this checkpoint: pass --model FILE, or train one with "
                               "fastminerf lipsync-train --identities ... --out RUN/lipsync.pt (or train --lipsync)")
    return cand
