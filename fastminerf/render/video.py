"""Writing frames to video (mp4 via the ffmpeg binary bundled in imageio-ffmpeg) and
contact sheets. Files are written to a temporary name and renamed when complete."""
from __future__ import annotations

import subprocess
from pathlib import Path

import imageio.v2 as imageio
import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageDraw

from ..files import atomic_path


def write_video(path: str | Path, frames, fps: float = 25.0, audio: str | Path | None = None) -> Path:
    """Encode frames (iterable of [H, W, 3] uint8) as H.264 mp4 (or .gif by extension);
    ``audio``: a file whose first audio stream is muxed in (AAC; mp4 only)."""
    path = Path(path)
    if audio is not None and path.suffix.lower() == ".gif":
        raise ValueError("a .gif cannot carry audio: write an .mp4")
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".gif":
            imageio.mimsave(tmp, [np.asarray(f) for f in frames], duration=1000 / fps, loop=0)
        else:
            with imageio.get_writer(tmp, fps=fps, codec="libx264", quality=8, macro_block_size=1,
                                    pixelformat="yuv420p") as w:
                for f in frames:
                    f = np.asarray(f)
                    H, W = f.shape[:2]
                    if H % 2 or W % 2:  # yuv420p needs even sizes
                        f = np.pad(f, ((0, H % 2), (0, W % 2), (0, 0)), mode="edge")
                    w.append_data(f)
        if audio is not None:
            mux_audio(tmp, audio)
    return path


def mux_audio(video: str | Path, audio: str | Path) -> Path:
    """Add ``audio``'s first audio stream to ``video`` in place (video copied, audio AAC),
    with the bundled ffmpeg of imageio-ffmpeg."""
    video = Path(video)
    with atomic_path(video) as out:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-i", str(video), "-i", str(audio),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy", "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
               str(out)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"ffmpeg could not mux {audio} into {video}: {res.stderr.strip()[-300:]}")
    return video


def write_image(path: str | Path, image: np.ndarray) -> Path:
    """Save [H, W, 3|4] uint8 as PNG (temp + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(image)).save(tmp, format="PNG")
    return path


def grid_image(tiles: list[list[np.ndarray]], pad: int = 2, fill: int = 255, header: list[str] | None = None) -> np.ndarray:
    """Rows × columns of equally sized [h, w, 3] uint8 tiles → one image; ``header``: one
    title per column, drawn in a strip above the first row."""
    h, w = tiles[0][0].shape[:2]
    rows, cols = len(tiles), max(len(r) for r in tiles)
    top = 16 if header else 0
    out = np.full((top + rows * (h + pad) + pad, cols * (w + pad) + pad, 3), fill, np.uint8)
    for i, row in enumerate(tiles):
        for j, t in enumerate(row):
            y, x = top + pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + h, x : x + w] = t[..., :3]
    if header:
        img = Image.fromarray(out)
        draw = ImageDraw.Draw(img)
        for j, text in enumerate(header[:cols]):
            draw.text((pad + j * (w + pad) + 3, 2), text, fill=(0, 0, 0))
        out = np.asarray(img)
    return out


def to_uint8(img) -> np.ndarray:
    """[H, W, 3] float tensor/array in [0, 1] → uint8."""
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
