"""Face-parsing region ids: the one table every part of fastminerf uses.

The ids are INSTA's segmentation ids (red channel of ``seg_mask/*.png``), so synthetic
masks, our preprocessing's masks and INSTA's ``seg_mask/`` files mean the same thing; the
same ids label mesh vertices (``vertex_regions.npy``) and triangles.
"""
from __future__ import annotations

from enum import IntEnum


class Region(IntEnum):
    """Region id → name (INSTA's face-parsing ids)."""

    BACKGROUND = 0
    HAIR = 80
    NECK = 110
    LOWER_LIP = 120
    UPPER_LIP = 130
    MOUTH_INTERIOR = 140
    NOSE = 150
    EAR = 180
    EYE = 210
    BROW = 240
    SKIN = 250


#: region id → lower-case name
REGIONS: dict[int, str] = {int(r): r.name.lower() for r in Region}
#: the regions INSTA treats as the mouth (lips-only expression gating, lip-weighted loss, mouth metrics)
MOUTH_REGIONS: tuple[int, ...] = (int(Region.MOUTH_INTERIOR), int(Region.UPPER_LIP), int(Region.LOWER_LIP))
