"""``fastminerf codes``: a labelled 2-D map (PCA) of a checkpoint's identity codes."""
from __future__ import annotations

from ..eval.codes import checkpoint_codes, draw_code_map, pca_2d
from ..files import write_json
from ..render.video import write_image


def register(sub) -> None:
    p = sub.add_parser("codes", help="plot the identity codes of a checkpoint in 2-D (PCA)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output image (.png)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write names, 2-D coordinates and explained variance")
    p.set_defaults(func=run)


def run(args) -> int:
    names, codes, path = checkpoint_codes(args.checkpoint)
    xy, explained = pca_2d(codes)
    print(f"wrote {write_image(args.out, draw_code_map(names, xy, explained))}")
    if args.json_out:
        doc = {"names": names, "xy": xy.round(6).tolist(), "explained": explained.round(6).tolist(), "checkpoint": path}
        print(f"wrote {write_json(args.json_out, doc)}")
    return 0
