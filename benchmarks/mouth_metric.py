"""Does the mouth-opening measure behind ``lip_motion`` see the mouth open? (issue 13)

    python benchmarks/mouth_metric.py CAST [CAST ...] [--stem mouth_metric]

``lip_motion`` correlates the rendered and the true *mouth opening* over frames, so the
opening measure must track the truth's own opening before it can judge a render. For every
identity of each cast (all frames with a seg_mask) this prints and records:

- ``valid`` — the Pearson correlation, on the ground truth itself, between the measured
  opening and the area of the truth's mouth interior (seg 140 pixels): 1 = the measure sees
  exactly the opening;
- ``frozen`` — the ``lip_motion`` of a frozen render: the identity's most closed ground-truth
  frame shown for every frame (≈ 0 wanted: a mouth that never moves must not score);

for the measure in use (:func:`fastminerf.eval.mouth.mouth_opening`: pixels of the truth's
mouth regions unlike every face colour of the box) and the earlier one (pixels of the mouth
box darker than half the median luminance of the box's skin). Needs no model: it reads the
casts only. Writes benchmarks/results/<stem>.json and .md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from fastminerf.data.cast import load_cast  # noqa: E402
from fastminerf.data.layout import read_seg  # noqa: E402
from fastminerf.data.regions import MOUTH_REGIONS, Region  # noqa: E402
from fastminerf.eval.mouth import lip_motion, mouth_box, mouth_opening  # noqa: E402
from fastminerf.render.views import background_color, composite_target  # noqa: E402

from common import RESULTS, environment, identity_dirs, md_table, write_results  # noqa: E402


def dark_count(img: torch.Tensor, box, seg: np.ndarray) -> float:
    """The earlier opening measure: box pixels darker than half the median luminance of the
    box's skin (face, not mouth, in the truth's seg)."""
    y0, y1, x0, x1 = box
    crop = img[y0:y1, x0:x1].float()
    lum = 0.299 * crop[..., 0] + 0.587 * crop[..., 1] + 0.114 * crop[..., 2]
    ids = seg[y0:y1, x0:x1]
    skin = torch.from_numpy((ids > 0) & ~np.isin(ids, MOUTH_REGIONS))
    limit = 0.5 * float(lum[skin].median()) if skin.any() else 0.3
    return float((lum < limit).sum())


def measures(img: torch.Tensor, truth: torch.Tensor, seg: np.ndarray) -> dict[str, float]:
    box = mouth_box(seg)
    return {"now": mouth_opening(img, box, seg, truth), "before": dark_count(img, box, seg)}


def identity_rows(cast, identity: int) -> dict:
    bg = background_color("white")
    frames = [int(f) for f in np.flatnonzero(cast.frame_identity == identity)]
    segs, imgs = {}, {}
    for f in frames:
        seg = read_seg(cast.identities[identity], int(cast.frame_local[f]))
        if seg is not None and mouth_box(seg) is not None:
            segs[f], imgs[f] = seg, composite_target(cast.image(f), bg)
    if len(segs) < 3:
        return {}
    area = [float((s == int(Region.MOUTH_INTERIOR)).sum()) for s in segs.values()]
    closed = min(segs, key=lambda f: (segs[f] == int(Region.MOUTH_INTERIOR)).sum())
    truth = [measures(imgs[f], imgs[f], segs[f]) for f in segs]
    frozen = [measures(imgs[closed], imgs[f], segs[f]) for f in segs]
    row = {"frames": len(segs)}
    for name in ("now", "before"):
        t = [m[name] for m in truth]
        row[f"valid_{name}"] = lip_motion(t, area)
        row[f"frozen_{name}"] = lip_motion([m[name] for m in frozen], t)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("casts", nargs="+")
    p.add_argument("--stem", default="mouth_metric")
    a = p.parse_args(argv)
    rows = []
    for c in a.casts:
        cast = load_cast(identity_dirs(Path(c)))
        for i, name in enumerate(cast.names):
            r = identity_rows(cast, i)
            if r:
                rows.append({"cast": Path(c).name, "identity": name, **{k: round(v, 3) if isinstance(v, float) else v
                                                                          for k, v in r.items()}})
                print(rows[-1], flush=True)
    cols = ["cast", "identity", "frames", "valid_now", "valid_before", "frozen_now", "frozen_before"]
    mean = {k: round(float(np.mean([r[k] for r in rows if r.get(k) is not None])), 3) for k in cols[3:]}
    md = ("# The mouth-opening measure against the truth's own mouth (issue 13)\n\n"
          f"    python benchmarks/mouth_metric.py {' '.join(a.casts)}\n\n"
          "`valid`: correlation of the measured opening with the truth's mouth-interior area (seg 140) over\n"
          "an identity's frames, on the ground truth. `frozen`: lip_motion of the most closed truth frame\n"
          "shown for every frame. `now`: the measure in use; `before`: the dark-pixel count it replaced.\n\n"
          + md_table(rows + [{"cast": "mean", **mean}], cols))
    write_results(RESULTS, a.stem, {"command": " ".join(["python", "benchmarks/mouth_metric.py", *(argv or sys.argv[1:])]),
                                    "rows": rows, "mean": mean, "environment": environment()}, md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
