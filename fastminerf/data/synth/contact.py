"""Contact sheet: identities × named expressions, frontal, one image."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .appearance import Light
from .render import Camera, default_camera, render_frame

ZOOM, FACE_HEIGHT = 1.45, -0.005  # contact-sheet camera: focal × ZOOM of the cast's, aimed at the face

#: the sheet's columns: title → expression coefficients
CONTACT_EXPRESSIONS: tuple[tuple[str, dict[str, float]], ...] = (
    ("neutral", {}),
    ("jawOpen", {"jawOpen": 0.7}),
    ("smile", {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0}),
    ("pucker", {"mouthPucker": 1.0}),
    ("funnel", {"mouthFunnel": 1.0, "jawOpen": 0.15}),
    ("blink", {"eyeBlink_L": 1.0, "eyeBlink_R": 1.0}),
    ("brow raise", {"browInnerUp": 1.0, "browOuterUp": 1.0}),
    ("brow down", {"browDown": 1.0}),
    ("cheek puff", {"cheekPuff": 1.0}),
)


def contact_sheet(head, members, tile: int = 128, expressions=CONTACT_EXPRESSIONS,
                  background: tuple[int, int, int] = (38, 40, 46)) -> np.ndarray:
    """Render every member with every expression, frontal, under the default light, with the
    cast's camera moved in on the face.

    Args:
        head: the :class:`~.head.SynthHead`.
        members: sequence of members (``name``, ``shape``, ``appearance``; see ``.cast.Member``) (name, shape, appearance are used).
        tile: pixel size of one square render.
        expressions: (title, {blendshape: coefficient}) per column.
    Returns:
        [H, W, 3] uint8 sheet with a title row and a name column.
    """
    model = head.model
    cam = default_camera(tile)
    c2w = cam.c2w.copy()
    c2w[1, 3] = FACE_HEIGHT  # closer than the dataset camera: the face fills the cell
    cam = Camera(tile, tile, cam.fx * ZOOM, cam.fy * ZOOM, cam.cx, cam.cy, c2w)
    label_w, label_h = 56, 18
    rows, cols = len(members), len(expressions)
    sheet = np.empty((label_h + rows * tile, label_w + cols * tile, 3), np.uint8)
    sheet[:] = background
    for c, (_, coeffs) in enumerate(expressions):
        e = np.zeros(model.n_expressions, np.float32)
        for name, value in coeffs.items():
            e[model.expression_names.index(name)] = value
        for r, m in enumerate(members):
            rgba, _ = render_frame(head, m.appearance, model.mesh(m.shape, e), np.eye(4), cam, Light())
            a = rgba[..., 3:4].astype(np.float32) / 255.0
            tile_rgb = rgba[..., :3] * a + np.asarray(background, np.float32) * (1 - a)
            y0, x0 = label_h + r * tile, label_w + c * tile
            sheet[y0 : y0 + tile, x0 : x0 + tile] = np.round(tile_rgb).astype(np.uint8)
    img = Image.fromarray(sheet)
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default()
    for c, (title, _) in enumerate(expressions):
        draw.text((label_w + c * tile + 4, 3), title, fill=(230, 230, 230), font=font)
    for r, m in enumerate(members):
        draw.text((4, label_h + r * tile + tile // 2 - 6), m.name, fill=(230, 230, 230), font=font)
    return np.asarray(img)
