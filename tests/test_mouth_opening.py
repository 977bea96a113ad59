"""The mouth opening is measured against the face's own colours: on a dark-skinned face a
frozen closed mouth must not score a high lip motion because its mouth box grows with the
truth's opening (issue 13; an absolute dark threshold scored 0.99 on the demo cast), and dark
stripes on the skin are not an open mouth while white teeth are."""
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


def test_teeth_count_as_open_and_dark_stripes_on_the_skin_do_not():
    gt, seg = _dark_frame(4)
    stripes = torch.tensor((0.35, 0.25, 0.02))  # yellow-brown stripes, like id001 of the 4×60 cast
    gt[::3] = torch.where(torch.from_numpy(seg[::3] == int(Region.SKIN))[..., None], stripes, gt[::3])
    teeth = torch.from_numpy(seg == int(Region.MOUTH_INTERIOR)) & (torch.arange(SIZE)[:, None] < 20)
    gt[teeth] = torch.tensor((0.95, 0.95, 0.9))
    box = mouth_box(seg)
    assert mouth_opening(gt, box, seg) == 5 * 16  # teeth + dark interior, not the stripes
    skin_only = gt.clone()
    skin_only[torch.from_numpy(np.isin(seg, (120, 130, 140)))] = torch.tensor(SKIN)
    assert mouth_opening(skin_only, box, seg, gt) == 0  # a render with skin over the mouth: closed
    noisy = (gt + 0.02 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert mouth_opening(noisy, box, seg, gt) == 5 * 16  # measured against the truth's colours
