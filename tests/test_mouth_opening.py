"""The mouth opening is measured against the skin around it: on a dark-skinned face a frozen
closed mouth must not score a high lip motion because its mouth box grows with the truth's
opening (issue 13; the absolute threshold scored 0.99 on the demo cast)."""
import numpy as np
import torch

from fastminerf.data.regions import Region
from fastminerf.eval.mouth import MouthScore, mouth_box, mouth_opening

SIZE = 40
SKIN, LIP, INSIDE = (0.30, 0.18, 0.12), (0.45, 0.10, 0.10), (0.03, 0.01, 0.01)  # skin luminance ≈ 0.21 < 0.3


def _dark_frame(opening: int):
    """A dark-skinned face whose mouth opens ``opening`` px: (rgb [H, W, 3], seg [H, W])."""
    rgb = torch.tensor(SKIN).expand(SIZE, SIZE, 3).clone()
    seg = np.full((SIZE, SIZE), int(Region.SKIN), np.uint8)
    top, bot = 18, 19 + opening
    for rows, colour, region in (((top - 2, top), LIP, Region.UPPER_LIP), ((top, bot), INSIDE, Region.MOUTH_INTERIOR),
                                 ((bot, bot + 2), LIP, Region.LOWER_LIP)):
        rgb[rows[0] : rows[1], 12:28] = torch.tensor(colour)
        seg[rows[0] : rows[1], 12:28] = region
    return rgb, seg


def test_frozen_closed_mouth_on_dark_skin_scores_no_lip_motion():
    openings = [0, 3, 6, 1, 5, 2, 7, 0, 4, 8, 2]
    follows, frozen = MouthScore(), MouthScore()
    closed, _ = _dark_frame(0)
    for o in openings:
        gt, seg = _dark_frame(o)
        follows.add(gt, gt, seg)
        frozen.add(closed, gt, seg)
    assert follows.result()["lip_motion"] > 0.99
    assert abs(frozen.result()["lip_motion"]) < 0.3


def test_dark_skin_is_not_counted_as_mouth_interior():
    gt, seg = _dark_frame(4)
    box = mouth_box(seg)
    assert mouth_opening(gt, box, seg) == 5 * 16  # only the interior rows
    assert mouth_opening(gt, box) > 5 * 16  # the absolute threshold (no seg_mask) also counts the skin
