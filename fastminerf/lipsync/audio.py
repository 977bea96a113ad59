"""Reading speech: any wav / mp3 / mp4 (anything ffmpeg decodes) → 16 kHz mono float32,
with one-line errors for what cannot drive a face.

Decoding and resampling go through the ffmpeg binary bundled with imageio-ffmpeg (a core
dependency), one process that also reports the source's sample rate; no other package is
needed. Checks, each an :class:`~fastminerf.errors.InputError` naming the file: missing,
unreadable, no audio stream, sample rate below :data:`MIN_SOURCE_RATE`, shorter than
``min_seconds``, silent (no 50 ms window louder than :data:`SILENCE_DBFS`).
"""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from ..errors import InputError

SAMPLE_RATE = 16000
MIN_SOURCE_RATE = 8000  # Hz: below this the formants that carry vowels (up to ~3.5 kHz) are gone
MIN_SECONDS = 0.5
SILENCE_DBFS = -50.0


@dataclass
class Audio:
    """Decoded speech.

    Attributes:
        samples: [N] float32 in [−1, 1], mono, at ``sample_rate``.
        sample_rate: Hz of ``samples`` (16 kHz unless asked otherwise).
        source_rate: Hz of the file's audio stream. path: the file.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    path: Path

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.sample_rate


def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, min_seconds: float = MIN_SECONDS,
               check: bool = True) -> Audio:
    """Decode the first audio stream of ``path`` to mono ``sample_rate`` float32.

    Raises:
        InputError naming the file: not found, unreadable, no audio stream, wrong (too low)
        sample rate, too short, silent (the last three only with ``check``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "audio file not found")
    cmd = [_ffmpeg(), "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1",
           "-ar", str(sample_rate), "-f", "f32le", "-"]
    res = subprocess.run(cmd, capture_output=True)
    err = res.stderr.decode("utf-8", "replace")
    streams = re.findall(r"Stream #\d+:\d+.*?: Audio: ([^\n]*)", err)
    if res.returncode != 0 or not streams:
        if res.returncode == 0 or "matches no streams" in err or ("Stream #" in err and not streams):
            raise InputError(path, "has no audio stream")
        last = [ln.strip() for ln in err.splitlines() if ln.strip()]
        raise InputError(path, f"not a readable audio file ({last[-1][:100] if last else 'ffmpeg failed'})")
    rate = re.search(r"(\d+) Hz", streams[0])
    source_rate = int(rate.group(1)) if rate else 0
    samples = np.frombuffer(res.stdout, "<f4").astype(np.float32)
    audio = Audio(samples, sample_rate, source_rate, path)
    if check:
        check_audio(audio, min_seconds)
    return audio


def check_audio(audio: Audio, min_seconds: float = MIN_SECONDS) -> None:
    """Raise InputError (naming ``audio.path``) for audio that cannot drive a face."""
    if audio.source_rate and audio.source_rate < MIN_SOURCE_RATE:
        raise InputError(audio.path, f"sample rate {audio.source_rate} Hz is too low for speech "
                                     f"(at least {MIN_SOURCE_RATE} Hz)")
    if audio.duration < min_seconds:
        raise InputError(audio.path, f"audio is {audio.duration:.2f} s long; at least {min_seconds:g} s is needed")
    if not np.isfinite(audio.samples).all():
        raise InputError(audio.path, "audio contains NaN or inf samples")
    loud = peak_window_dbfs(audio.samples, audio.sample_rate)
    if loud < SILENCE_DBFS:
        raise InputError(audio.path, f"audio is silent (loudest 50 ms at {loud:.0f} dBFS; "
                                     f"speech needs more than {SILENCE_DBFS:.0f} dBFS)")


def peak_window_dbfs(samples: np.ndarray, sample_rate: int, window_s: float = 0.05) -> float:
    """RMS level (dBFS) of the loudest ``window_s`` window."""
    w = max(1, int(window_s * sample_rate))
    n = samples.shape[0] // w
    if n == 0:
        rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64)))) if samples.size else 0.0
    else:
        rms = float(np.sqrt(np.mean(np.square(samples[: n * w].reshape(n, w), dtype=np.float64), 1)).max())
    return 20 * np.log10(max(rms, 1e-10))
