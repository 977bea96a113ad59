"""``fastminerf codes``: a labelled 2-D map (PCA) of a checkpoint's identity codes."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("codes", help="plot the identity codes of a checkpoint in 2-D (PCA)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file or run folder")
    p.add_argument("--out", required=True, help="output image (.png)")
    p.add_argument("--json", dest="json_out", metavar="FILE", help="also write names, 2-D coordinates and explained variance")
    p.set_defaults(func=run)


def run(args) -> int:
    import json
    import os
    from pathlib import Path

    from ..eval.codes import checkpoint_codes, draw_code_map, pca_2d
    from ..render.video import write_image

    names, codes, path = checkpoint_codes(args.checkpoint)
    xy, explained = pca_2d(codes)
    print(f"wrote {write_image(args.out, draw_code_map(names, xy, explained))}")
    if args.json_out:
        p = Path(args.json_out)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"names": names, "xy": xy.round(6).tolist(), "explained": explained.round(6).tolist(),
                                   "checkpoint": path}, indent=1))
        tmp.replace(p)
        print(f"wrote {p}")
    return 0
