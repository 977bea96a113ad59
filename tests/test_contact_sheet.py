"""The demo's contact sheet shows the mouth: per row, the ground truth's mouth box enlarged
(truth | render) next to the whole held-out and transfer frames (issue 13)."""
import numpy as np
import pytest

from fastminerf.demo import contact_sheet, mouth_crop, with_mouth


def _image_with_box():
    """[64, 48, 3] grey image with a 6×10 red patch at rows 30..35, cols 20..29."""
    img = np.full((64, 48, 3), 128, np.uint8)
    img[30:36, 20:30] = (255, 0, 0)
    return img, (30, 36, 20, 30)


def test_mouth_crop_enlarges_the_box_to_the_tile():
    img, box = _image_with_box()
    crop = mouth_crop(img, box)
    assert crop.shape == img.shape and crop.dtype == np.uint8
    red = (crop == (255, 0, 0)).all(-1)
    # the 10 px wide box becomes a square of side 12.5 → ~13 px, scaled to 48 px wide: ≈ 37 px of red
    assert red[crop.shape[0] // 2].sum() > 30
    assert red.mean() > 0.2 and not red.all()  # grey margin around the mouth stays visible
    assert (mouth_crop(img, None) == 255).all()


def test_mouth_crop_at_the_image_border_stays_inside():
    img = np.zeros((32, 32, 3), np.uint8)
    img[0:4, 28:32] = 200
    crop = mouth_crop(img, (0, 4, 28, 32))
    assert crop.shape == (32, 32, 3) and (crop[0, -1] == 200).all()


def test_with_mouth_uses_the_truth_box_for_both():
    truth, box = _image_with_box()
    render = np.zeros_like(truth)
    seg = np.zeros(truth.shape[:2], np.uint8)
    seg[30:36, 20:30] = 130  # upper lip
    tiles = with_mouth(truth, render, seg)
    assert len(tiles) == 4 and tiles[0] is truth and tiles[1] is render
    assert (tiles[2] == mouth_crop(truth, (27, 39, 17, 33))).all() and (tiles[3] == 0).all()
    assert (with_mouth(truth, render, None)[2] == 255).all()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.data.synth.cast import synthesize_cast
    from fastminerf.train.trainer import Trainer

    root = tmp_path_factory.mktemp("sheet")
    synthesize_cast(root / "cast", n_identities=2, n_frames=10, size=32, seed=0, write_obj=False, workers=1,
                    progress=False)
    cast = load_cast([root / "cast" / "id000", root / "cast" / "id001"])
    cfg = load_config("tiny_cpu", ["data.rays_per_batch=128", "data.frames_per_batch=4", "render.occupancy_resolution=32"])
    trainer = Trainer(cfg, cast, root / "run", device="cpu")
    trainer.train_step()
    return trainer.avatar.eval(), cast


def test_contact_sheet_has_mouth_columns_from_the_truth(tiny_model):
    avatar, cast = tiny_model
    sheet = contact_sheet(avatar, cast)
    tile, pad, header = 32, 2, 16
    assert sheet.shape == (header + 2 * (tile + pad) + pad, 8 * (tile + pad) + pad, 3)
    # column 2 of row 0 is the held-out truth's mouth box enlarged: it differs from the whole frame
    y, x = header + pad, pad + 2 * (tile + pad)
    whole, mouth = sheet[y : y + tile, pad : pad + tile], sheet[y : y + tile, x : x + tile]
    assert not (mouth == 255).all() and not (mouth == whole).all()
