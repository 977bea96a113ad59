"""Audio features at the video's frame rate: [T, D] for frames at times k / fps.

Two kinds (chosen by measurement, ``benchmarks/lipsync.py``):

- ``"mel"``: a 40-band log-mel spectrogram (25 ms Hann windows every 10 ms, 60–7600 Hz,
  pre-emphasis 0.97; numpy only, any language), mean-normalised per clip and band, sampled
  at :data:`SUB` instants spread over each video frame's duration → D = SUB · 40;
- ``"mel+phones"``: the same plus phone occupancies from pocketsphinx's English phone-loop
  decoder (its bundled US-English acoustic model, no download; the ``lipsync`` extra): per
  video frame the fraction of each of 40 phones (39 ARPAbet + silence) in a window of one
  frame either side → D = SUB · 40 + 40. **English only**: other languages decode into the
  nearest English phones.

Frame k of the video is at time k / fps and its features are centred there (the offset
benchmark checks that this convention gives 0 frames of lag).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from ..errors import InputError
from ..extras import require

FEATURE_KINDS = ("mel", "mel+phones")
N_MELS = 40
HOP_S, WIN_S = 0.010, 0.025
SUB = 4  # spectral samples per video frame
PHONES = ["SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
          "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V", "W",
          "Y", "Z", "ZH"]


def feature_dim(kind: str) -> int:
    check_kind(kind)
    return SUB * N_MELS + (len(PHONES) if kind == "mel+phones" else 0)


def check_kind(kind: str) -> None:
    if kind not in FEATURE_KINDS:
        raise InputError(None, f"unknown audio feature kind {kind!r} (choose from {', '.join(FEATURE_KINDS)})")


@functools.lru_cache(maxsize=4)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int = N_MELS, fmin: float = 60.0, fmax: float = 7600.0) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters on the HTK mel scale."""
    def mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    fmax = min(fmax, sample_rate / 2)
    edges = hz(np.linspace(mel(fmin), mel(fmax), n_mels + 2))
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    fb = np.clip(np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)), 0.0, None)
    return fb.astype(np.float32)


def log_mel(samples: np.ndarray, sample_rate: int = 16000, n_mels: int = N_MELS) -> np.ndarray:
    """[N, n_mels] float32 natural-log mel energies; frame j is centred at j · 10 ms."""
    x = np.asarray(samples, np.float32)
    x = np.concatenate([x[:1], x[1:] - 0.97 * x[:-1]]) if x.size else x
    hop, win = int(round(HOP_S * sample_rate)), int(round(WIN_S * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    x = np.pad(x, (win // 2, win // 2))
    n = max(0, 1 + (x.shape[0] - win) // hop)
    if n == 0:
        return np.zeros((0, n_mels), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x, win)[::hop][:n] * np.hanning(win).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, n_fft, axis=1)) ** 2
    return np.log(power @ mel_filterbank(sample_rate, n_fft, n_mels).T + 1e-8).astype(np.float32)


def frame_times(n_frames: int, fps: float) -> np.ndarray:
    """[T] seconds of video frames 0..T−1."""
    return np.arange(n_frames) / float(fps)


def n_video_frames(duration: float, fps: float) -> int:
    """Frames k with k / fps inside ``duration`` seconds: the video covers the whole audio."""
    return max(1, int(np.ceil(duration * fps - 1e-6)))


def _sample_rows(table: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of ``table`` [N, C] at fractional indices idx [...] (clamped)."""
    idx = np.clip(idx, 0, table.shape[0] - 1)
    i0 = np.floor(idx).astype(np.int64)
    i1 = np.minimum(i0 + 1, table.shape[0] - 1)
    w = (idx - i0)[..., None].astype(np.float32)
    return table[i0] * (1 - w) + table[i1] * w


def spectral_features(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """[T, SUB · N_MELS] per-clip mean-normalised log-mel, SUB samples across each frame."""
    mel = log_mel(samples, sample_rate)
    if mel.shape[0] == 0:
        return np.zeros((n_frames, SUB * N_MELS), np.float32)
    mel = mel - mel.mean(0, keepdims=True)
    offsets = ((np.arange(SUB) + 0.5) / SUB - 0.5) / fps  # [SUB] s, spread over one frame
    idx = (frame_times(n_frames, fps)[:, None] + offsets[None]) / HOP_S  # [T, SUB]
    return _sample_rows(mel, idx).reshape(n_frames, SUB * N_MELS).astype(np.float32)


@functools.lru_cache(maxsize=1)
def _decoder():
    ps = require("pocketsphinx", "lipsync", "phone features (--features mel+phones; or use --features mel)")
    mp = ps.get_model_path()
    return ps.Decoder(hmm=os.path.join(mp, "en-us", "en-us"), allphone=os.path.join(mp, "en-us", "en-us-phone.lm.bin"),
                   lm=None, loglevel="FATAL", lw=2.0, beam=1e-20, pbeam=1e-20, backtrace=False)


def phone_labels(samples: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """[N] int phone index (into :data:`PHONES`) per 10 ms frame, from pocketsphinx's
    English phone loop (16 kHz input); noise and unknown labels count as silence."""
    if sample_rate != 16000:
        raise ValueError("phone decoding needs 16 kHz audio")
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    d = _decoder()
    d.start_utt()
    d.process_raw(pcm.tobytes(), full_utt=True)
    d.end_utt()
    n = int(np.ceil(samples.shape[0] / (HOP_S * sample_rate)))
    labels = np.zeros(n, np.int64)
    index = {p: i for i, p in enumerate(PHONES)}
    for seg in d.seg():
        labels[max(seg.start_frame, 0) : seg.end_frame + 1] = index.get(seg.word, 0)
    return labels


def phone_features(labels: np.ndarray, fps: float, n_frames: int) -> np.ndarray:
    """[T, len(PHONES)] fraction of each phone within ±1 video frame of each frame time."""
    one_hot = np.eye(len(PHONES), dtype=np.float32)[labels]  # [N, P]
    csum = np.concatenate([np.zeros((1, len(PHONES)), np.float32), np.cumsum(one_hot, 0)])
    t = frame_times(n_frames, fps)
    lo = np.clip(np.round((t - 1.0 / fps) / HOP_S).astype(np.int64), 0, len(labels))
    hi = np.clip(np.round((t + 1.0 / fps) / HOP_S).astype(np.int64) + 1, 0, len(labels))
    counts = csum[hi] - csum[lo]
    return counts / np.maximum(hi - lo, 1)[:, None].astype(np.float32)


def frame_energy(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int) -> np.ndarray:
    """[T] log RMS level (natural log) of the audio within ±half a frame of each frame time
    (the "audio energy → jaw" baseline's input)."""
    t = frame_times(n_frames, fps)
    lo = np.clip(np.round((t - 0.5 / fps) * sample_rate).astype(np.int64), 0, samples.shape[0])
    hi = np.clip(np.round((t + 0.5 / fps) * sample_rate).astype(np.int64), 0, samples.shape[0])
    c = np.concatenate([[0.0], np.cumsum(np.square(samples, dtype=np.float64))])
    ms = (c[hi] - c[lo]) / np.maximum(hi - lo, 1)
    return np.log(np.sqrt(ms) + 1e-5).astype(np.float32)


def audio_features(samples: np.ndarray, sample_rate: int, fps: float, n_frames: int, kind: str = "mel") -> np.ndarray:
    """[n_frames, feature_dim(kind)] float32 features of frames at k / fps (see module docstring)."""
    check_kind(kind)
    feats = [spectral_features(samples, sample_rate, fps, n_frames)]
    if kind == "mel+phones":
        feats.append(phone_features(phone_labels(samples, sample_rate), fps, n_frames))
    return np.concatenate(feats, 1).astype(np.float32)
