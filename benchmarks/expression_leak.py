"""How much identity travels through the expression code: transfer PSNR with and without it.

    python benchmarks/expression_leak.py RUN [RUN ...] [--frames 3] [--out FILE.json]

For every trained model (run folder or checkpoint) of a synthetic cast, every identity A is
driven by every other identity B's held-out frames (B's mesh deformation, head pose and
expression code; the transfer ground truth of the cast) and compared with the ground truth
(:func:`fastminerf.eval.evaluate.evaluate_transfer`), twice:

* ``as-is``: the expression code is B's (what ``fastminerf transfer`` does);
* ``e = mean(A)``: the same driven mesh and pose, but A's mean training expression code.

The mesh already carries the expression's geometry, so a model whose colours do not depend
on *who* made the expression scores the same in both columns; a higher ``e = mean(A)``
score means the network reads identity from the expression code (it "mixes identities").
Prints a markdown table; ``--out`` also writes the numbers as JSON (temp file + rename).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import torch  # noqa: E402

from common import dumps, write_atomic  # noqa: E402


@torch.no_grad()
def leak(run: str, frames: int) -> dict:
    """{"as_is", "mean_expression": mean transfer PSNRs, "pairs": {"A<-B": [as_is, mean]}} of one model."""
    from fastminerf.api import cast_of, load_avatar
    from fastminerf.eval.evaluate import evaluate_transfer

    avatar, _ = load_avatar(run)
    avatar.eval()
    cast = cast_of(avatar)
    own, mean = (evaluate_transfer(avatar, cast, frames, "white", expression_of_a=m) for m in (False, True))
    return {"run": str(run), "as_is": own["transfer_psnr"], "mean_expression": mean["transfer_psnr"],
            "pairs": {k: [v, mean["transfer_pairs"][k]] for k, v in own["transfer_pairs"].items()}}


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
