"""How much identity travels through the expression code: transfer PSNR with and without it.

    python benchmarks/expression_leak.py RUN [RUN ...] [--frames 3] [--out FILE.json]

For every trained model (run folder or checkpoint) of a synthetic cast, every identity A is
driven by every other identity B's held-out frames (B's mesh deformation, head pose and
expression code; the transfer ground truth of the cast) and compared with the ground truth:

* ``as-is``: the expression code is B's (what ``fastminerf transfer`` does);
* ``e = mean(A)``: the same driven mesh and pose, but A's mean training expression code.

The mesh already carries the expression's geometry, so a model whose colours do not depend
on *who* made the expression scores the same in both columns; a higher ``e = mean(A)``
score means the network reads identity from the expression code (it "mixes identities").
Prints a markdown table; ``--out`` also writes the numbers as JSON (temp file + rename).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from runs import dumps, write_atomic  # noqa: E402


@torch.no_grad()
def leak(run: str, frames: int) -> dict:
    """{"as_is", "mean_expression", "pairs": {"A<-B": [as_is, mean]}} mean PSNRs of one model."""
    from fastminerf.api import cast_of, load_avatar
    from fastminerf.data.layout import read_identity
    from fastminerf.eval.metrics import psnr
    from fastminerf.render.transfer import driven_frames
    from fastminerf.render.views import background_color, composite_target, render_image

    avatar, _ = load_avatar(run)
    avatar.eval()
    cast = cast_of(avatar)
    bg = background_color("white", avatar.canonical.device)
    pairs = {}
    for a in range(cast.n_identities):
        mean_e = torch.from_numpy(cast.expressions[cast.frames("train", a)].mean(0, keepdims=True))
        tdir = cast.identities[a].root / "transfer"
        for sub in sorted(p for p in tdir.iterdir() if p.name in cast.names) if tdir.is_dir() else []:
            b, gt = cast.index(sub.name), read_identity(sub)
            meta = json.loads((sub / "transforms_test.json").read_text())["transfer"]
            scores = [[], []]
            for j, local in enumerate(meta["driver_frames"][:frames]):
                fb, c2h, K = driven_frames(avatar, cast, a, np.array([cast.frame_offset[b] + local]))
                target = composite_target(gt.image(j), bg.cpu())
                for col, e in enumerate((fb.expression, mean_e.to(fb.expression))):
                    fb.expression = e
                    img = render_image(avatar, fb, c2h[0], K[0], cast.height, cast.width, bg)["rgb"]
                    scores[col].append(float(psnr(img, target)))
            pairs[f"{cast.names[a]}<-{sub.name}"] = [float(np.mean(s)) for s in scores]
    v = np.array(list(pairs.values()))
    return {"run": str(run), "as_is": float(v[:, 0].mean()), "mean_expression": float(v[:, 1].mean()), "pairs": pairs}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run folders or checkpoints of models trained on a synthetic cast")
    ap.add_argument("--frames", type=int, default=3, help="driver frames per pair")
    ap.add_argument("--out", type=Path, help="also write the numbers to this JSON file")
    a = ap.parse_args(argv)
    rows = [leak(r, a.frames) for r in a.runs]
    print("| model | transfer PSNR, B's expression code | same, A's mean code | leak |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['as_is']:.2f} | {r['mean_expression']:.2f} | {r['mean_expression'] - r['as_is']:+.2f} dB |")
    if a.out:
        write_atomic(a.out, dumps({"command": " ".join(["python", *sys.argv]), "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
