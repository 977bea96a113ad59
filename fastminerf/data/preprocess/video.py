"""Video input through the ffmpeg binary bundled with imageio-ffmpeg (no system ffmpeg).

Frames stream as [H, W, 3] uint8 RGB; nothing holds the whole clip in memory.
"""
from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg
import numpy as np

from ...errors import InputError

MIN_SECONDS = 1.0


@dataclass
class VideoInfo:
    """What a clip is: path, fps, frame size (W, H), frame count, duration (s), has_audio."""

    path: Path
    fps: float
    width: int
    height: int
    n_frames: int
    duration: float
    has_audio: bool


def _open(path: Path):
    try:
        gen = imageio_ffmpeg.read_frames(str(path))
        meta = next(gen)
    except (OSError, RuntimeError, StopIteration) as e:
        msg = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        raise InputError(path, f"not a readable video ({msg[:120]})") from None
    return gen, meta


def probe(path: str | Path, max_frames: int | None = None) -> VideoInfo:
    """Decode the clip once to count its frames and check it (errors name the file).

    Raises InputError when the file is missing, is not a video, has no frames or is
    shorter than :data:`MIN_SECONDS` (after ``max_frames``, when given).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "video file not found")
    gen, meta = _open(path)
    fps = float(meta.get("fps") or 0.0)
    W, H = (int(s) for s in meta.get("size", (0, 0)))
    n, cut = 0, False
    try:
        for _ in gen:
            n += 1
            if max_frames is not None and n >= max_frames:
                cut = True
                break
    except (OSError, RuntimeError) as e:
        raise InputError(path, f"video decoding failed after {n} frames ({str(e)[:120]})") from None
    finally:
        gen.close()
    if n == 0 or fps <= 0 or W <= 0 or H <= 0:
        raise InputError(path, "not a readable video (no frames)")
    duration = n / fps
    if duration < MIN_SECONDS - 1e-6:
        what = f"--max-frames {max_frames} keeps {duration:.2f} s" if cut else f"clip is {duration:.2f} s long"
        raise InputError(path, f"{what}; at least {MIN_SECONDS:g} s is needed")
    return VideoInfo(path, fps, W, H, n, duration, bool(meta.get("audio_codec")))


def frames(info: VideoInfo) -> Iterator[np.ndarray]:
    """Yield the first ``info.n_frames`` frames as [H, W, 3] uint8 RGB."""
    gen, meta = _open(info.path)
    W, H = (int(s) for s in meta["size"])
    try:
        for i, buf in enumerate(gen):
            if i >= info.n_frames:
                break
            yield np.frombuffer(buf, np.uint8).reshape(H, W, 3)
    finally:
        gen.close()


def extract_audio(info: VideoInfo, out: Path, sample_rate: int = 16000) -> bool:
    """Write the clip's audio (first ``info.duration`` s) as mono 16-bit PCM WAV.

    16 kHz mono is what speech feature extractors (wav2vec 2.0, DeepSpeech) take.
    Returns False when the clip has no audio stream.
    """
    if not info.has_audio:
        return False

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(info.path),
           "-t", f"{info.duration:.4f}", "-vn", "-ac", "1", "-ar", str(sample_rate), "-c:a", "pcm_s16le", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not out.is_file():
        out.unlink(missing_ok=True)
        return False
    return True
