"""Quality-assurance artefacts (never read by training): contact sheet, CSV, JSON summary.

The contact sheet shows, for evenly spaced frames, two tiles side by side: the matted
frame over a grey checkerboard with the seg_mask regions tinted (does the mask cover hair
and face and nothing else? are the lips where they should be?) and
the frame with the fitted mesh shaded on top, MediaPipe landmarks (green) and the
projected model landmarks (red) — does the mesh follow jaw and lips?
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .tracking import import_cv2


def render_mesh(image: np.ndarray, verts_cam: np.ndarray, faces: np.ndarray, K: tuple, alpha: float = 0.55,
                colors: np.ndarray | None = None) -> np.ndarray:
    """Shade a mesh over an image (painter's algorithm, Lambert light from the camera).

    Args:
        image: [H, W, 3] uint8. verts_cam: [V, 3] camera space (OpenCV axes, metres).
        faces: [T, 3]. K: (fx, fy, cx, cy). colors: optional [T, 3] uint8 base colours.
    Returns:
        [H, W, 3] uint8 copy with the mesh blended in.
    """
    cv2 = import_cv2()
    fx, fy, cx, cy = K
    z = np.maximum(verts_cam[:, 2], 1e-4)
    uv = np.stack([fx * verts_cam[:, 0] / z + cx, fy * verts_cam[:, 1] / z + cy], -1)
    tri = verts_cam[faces]  # [T, 3, 3]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    centre = tri.mean(1)
    view = -centre / (np.linalg.norm(centre, axis=1, keepdims=True) + 1e-12)
    facing = (n * view).sum(1)
    keep = np.flatnonzero(facing > 0)
    order = keep[np.argsort(-centre[keep, 2])]  # far to near
    shade = np.clip(0.25 + 0.75 * facing, 0, 1)
    base = np.full((len(faces), 3), 200, np.float32) if colors is None else colors.astype(np.float32)
    col = (base * shade[:, None]).astype(np.uint8)
    layer = image.copy()
    mask = np.zeros(image.shape[:2], np.uint8)
    pts = np.round(uv[faces] * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    for t in order:
        cv2.fillConvexPoly(layer, pts[t], col[t].tolist(), shift=2)
        cv2.fillConvexPoly(mask, pts[t], 255, shift=2)
    m = (mask[..., None] > 0) * alpha
    return (image * (1 - m) + layer * m).astype(np.uint8)


def draw_points(image: np.ndarray, pts: np.ndarray, color: tuple, r: int = 1) -> np.ndarray:
    """Dots at pts [N, 2] (pixels, NaN skipped) on a copy of image [H, W, 3]."""
    cv2 = import_cv2()
    out = image.copy()
    for x, y in pts:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (int(x * 4), int(y * 4)), r * 4, color, -1, cv2.LINE_AA, shift=2)
    return out


def checker_composite(rgba: np.ndarray, cell: int = 16) -> np.ndarray:
    """[H, W, 4] uint8 over a grey checkerboard → [H, W, 3] uint8."""
    H, W = rgba.shape[:2]
    yy, xx = np.mgrid[:H, :W]
    bg = np.where(((yy // cell) + (xx // cell)) % 2 == 0, 90, 150).astype(np.float32)[..., None]
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    return (rgba[..., :3] * a + bg * (1 - a)).astype(np.uint8)


def contact_sheet(tiles: list[np.ndarray], cols: int = 4, tile: int = 256) -> np.ndarray:
    """Tiles [h, w, 3] uint8 (resized to tile×tile each) in a grid → [R·tile, cols·tile, 3]."""
    cv2 = import_cv2()
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.zeros((rows * tile, cols * tile, 3), np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        sheet[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile] = cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA)
    return sheet


def write_errors_csv(path: Path, error_px: np.ndarray, face_height_px: np.ndarray, found: np.ndarray) -> None:
    """Per-frame landmark reprojection error: frame, found, error_px, error_pct (of face height)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["frame", "face_found", "error_px", "error_pct_face_height", "face_height_px"])
        for i, (e, h, ok) in enumerate(zip(error_px, face_height_px, found)):
            w.writerow([i, int(ok), f"{e:.3f}", f"{100 * e / h:.3f}" if ok else "", f"{h:.1f}"])


def summary(error_px: np.ndarray, face_height_px: np.ndarray, found: np.ndarray) -> dict:
    """Median / 95th percentile of the per-frame error in % of face height (found frames)."""
    pct = 100.0 * error_px[found] / face_height_px[found]
    return {"error_pct_median": round(float(np.median(pct)), 3), "error_pct_p95": round(float(np.percentile(pct, 95)), 3),
            "error_px_median": round(float(np.median(error_px[found])), 3)}


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=1))


#: display colours of INSTA region ids (RGB)
SEG_COLORS = {250: (230, 190, 160), 240: (120, 60, 0), 210: (255, 255, 255), 150: (0, 200, 0),
              140: (90, 0, 110), 130: (255, 140, 0), 120: (255, 0, 0), 110: (60, 120, 255), 80: (100, 60, 30)}


def seg_overlay(image: np.ndarray, seg: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Blend region colours (``SEG_COLORS``) over image [H, W, 3] where seg [H, W] > 0."""
    lut = np.zeros((256, 3), np.float32)
    for k, c in SEG_COLORS.items():
        lut[k] = c
    m = (seg > 0)[..., None] * alpha
    return (image * (1 - m) + lut[seg] * m).astype(np.uint8)
