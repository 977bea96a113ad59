"""The synthetic cast's voice: ``audio.wav`` made from the same syllable schedule that drives
the jaw and the lips (:class:`~.motion.Speech`), so audio → expression has exact ground truth.

A source-filter formant synthesiser, vectorised over harmonics (no per-sample loop):

- source: a glottal pulse train at the person's pitch (95–230 Hz, a slow intonation wave and
  a rise on stressed syllables), harmonics falling at −6 dB/octave, a little breath noise;
- filter: three cascaded formant resonators whose frequencies follow the mouth tracks at
  every sample — F1 rises with ``jawOpen`` (open vowels /a/), F2 falls with ``mouthPucker`` /
  ``mouthFunnel`` (rounded /u/, /o/) and rises with ``mouthStretch`` (spread /i/, /e/);
- loudness: the voice sounds while a syllable does (its "voicing" envelope inside talking
  phrases), louder the wider the jaw opens and nearly silent for closed, pressed lips (a
  faint /m/ murmur); pauses between phrases are silent apart from a noise floor 60 dB down.

Time t of the audio is time t of the video (frame k is at k / fps). 16 kHz mono 16-bit PCM,
written with the standard library (byte-stable: same cast arguments, same bytes).
"""
from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...files import atomic_path
from .motion import Speech, _wave

SAMPLE_RATE = 16000
MAX_HARMONIC_HZ = 5000.0
BANDWIDTHS = (90.0, 110.0, 160.0)  # Hz, F1..F3
CONTROL_RATE = 1000.0  # Hz: formants and harmonic amplitudes are computed at this rate


@dataclass(frozen=True)
class Voice:
    """One synthetic person's voice: mean pitch (Hz), pitch-wave depth, breathiness."""

    f0: float
    intonation: float
    breath: float


def sample_voice(rng: np.random.Generator) -> Voice:
    return Voice(f0=float(rng.uniform(95.0, 230.0)), intonation=float(rng.uniform(0.05, 0.12)),
                 breath=float(rng.uniform(0.01, 0.03)))


def formants(tracks: dict[str, np.ndarray]) -> np.ndarray:
    """[3, T] formant frequencies (Hz) from mouth tracks {name: [T]} (see module docstring)."""
    jaw, pucker, funnel = tracks["jawOpen"], tracks["mouthPucker"], tracks["mouthFunnel"]
    stretch = tracks["mouthStretch"]
    f1 = np.clip(300.0 + 1100.0 * jaw - 80.0 * pucker, 250.0, 1000.0)
    f2 = np.clip(1450.0 - 700.0 * pucker - 300.0 * funnel + 1000.0 * stretch, 600.0, 2600.0)
    f3 = np.clip(2600.0 - 300.0 * pucker + 200.0 * stretch, 2000.0, 3200.0)
    return np.stack([f1, f2, f3])


def loudness(tracks: dict[str, np.ndarray]) -> np.ndarray:
    """[T] linear gain: voicing × (louder with the jaw open, near silent with pressed lips)."""
    open_ = np.clip(tracks["jawOpen"] / 0.5, 0.0, 1.0)
    press = np.clip(tracks["mouthPress"] / 0.6, 0.0, 1.0)
    return tracks["voicing"] * (0.3 + 0.7 * open_) * (1.0 - 0.8 * press)


def synthesize_speech(speech: Speech, duration: float, voice: Voice, rng: np.random.Generator,
                      sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """[round(duration · sample_rate)] float32 samples in [−1, 1] speaking ``speech``."""
    n = int(round(duration * sample_rate))
    t = np.arange(n) / sample_rate
    # the filter moves slowly: formants and harmonic amplitudes on a 1 kHz control grid [M],
    # linearly interpolated to the samples
    tc = np.arange(int(np.ceil(duration * CONTROL_RATE)) + 2) / CONTROL_RATE
    tr = speech.tracks(tc)
    F = formants(tr)  # [3, M]
    f0c = voice.f0 * (1.0 + voice.intonation * _wave(rng, tc, 0.2, 0.8, 3) + 0.08 * tr["emphasis"])  # [M] pitch
    f0 = np.interp(t, tc, f0c)
    gain = np.interp(t, tc, loudness(tr))
    pos = t * CONTROL_RATE
    i0 = np.minimum(pos.astype(np.int64), tc.size - 2)
    w = pos - i0
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    out = np.zeros(n)
    for h in range(1, int(MAX_HARMONIC_HZ / (voice.f0 * (1 - voice.intonation))) + 1):
        fh = h * f0c
        amp = np.ones(tc.size) / h  # glottal tilt, −6 dB/octave
        for i, bw in enumerate(BANDWIDTHS):  # cascade of resonators, unit gain at 0 Hz
            Fi = F[i]
            amp *= Fi**2 / np.sqrt((Fi**2 - fh**2) ** 2 + (bw * fh) ** 2)
        amp *= fh < MAX_HARMONIC_HZ
        out += (amp[i0] * (1 - w) + amp[i0 + 1] * w) * np.sin(h * phase)
    out *= gain
    out += voice.breath * gain * rng.standard_normal(n) + 1e-3 * rng.standard_normal(n)
    return np.clip(0.12 * out, -1.0, 1.0).astype(np.float32)


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float samples in [−1, 1] as 16-bit PCM WAV (temp file + rename)."""
    path = Path(path)
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        w.writeframes(pcm.tobytes())
    return path


def write_member_audio(folder: Path, speech: Speech, n_frames: int, fps: float, seed: int, index: int) -> Path:
    """``folder/audio.wav``: identity ``index``'s voice (its own random stream [seed, index, 3],
    so the images and expressions of the cast do not change) over its n_frames / fps seconds."""
    rng = np.random.default_rng([seed, index, 3])
    voice = sample_voice(rng)
    return write_wav(Path(folder) / "audio.wav", synthesize_speech(speech, n_frames / fps, voice, rng))
