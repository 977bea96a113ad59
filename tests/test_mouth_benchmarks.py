"""The mouth in the benchmarks (issue 13): ablation.py's mouth table, --variant and --mouth
lips-only; the landmark lip opening (fastminerf/eval/lips.py) used by real_avatar.py."""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import ablation  # noqa: E402

from fastminerf.eval.lips import openings_of  # noqa: E402

MICRO = ["--set", "data.rays_per_batch=128", "--set", "data.frames_per_batch=4",
         "--set", "render.occupancy_resolution=32", "--threads", "1"]


def bench(capsys, *args: str) -> tuple[int, str, str]:
    """ablation.main in this process (no interpreter start-up): (exit code, stdout, stderr);
    torch's thread count (``--threads``) is restored."""
    threads = torch.get_num_threads()
    try:
        code = ablation.main(list(args))
    finally:
        torch.set_num_threads(threads)
    out, err = capsys.readouterr()
    return code, out, err


def test_custom_variant_parses_overrides_with_commas_in_values():
    assert ablation.custom_variant("fix:data.mouth_fraction=0.2,model.levels=[4,8],train.seed=3") == (
        "fix", "M", ["data.mouth_fraction=0.2", "model.levels=[4,8]", "train.seed=3"])
    assert ablation.custom_variant("b2@baseline:data.mouth_fraction=0.1")[:2] == ("b2", "baseline")
    for bad in ["fix", "fix:", "M:data.mouth_fraction=0.2", "x@nope:data.a=1", "x:data.a", "a b:data.a=1"]:
        with pytest.raises(argparse.ArgumentTypeError):
            ablation.custom_variant(bad)


def test_mouth_subset_and_custom_variant_resolve():
    args = ablation.resolve_args(ablation.build_parser(), [
        "--cpu-demo", "--variants", "mouth", "--variant", "fix:data.mouth_fraction=0.25", "--mouth", "lips-only",
        "--smoke", "--device", "cpu"])
    assert args.variants == ["M", "baseline", "concat_learned", "M_nodrop", "fix"]
    assert (args.identities, args.frames, args.size, args.steps, args.transfer_frames) == (3, 40, 128, 1500, None)
    assert args.stem == "ablation-cpu-demo-lips-only-smoke"
    cfg = ablation.variant_config("fix", 0, args)
    assert cfg.data.mouth_fraction == 0.25 and cfg.model == ablation.variant_config("M", 0, args).model
    assert ablation.describe("fix", args) == "M + data.mouth_fraction=0.25"
    four = ablation.resolve_args(ablation.build_parser(), ["--cpu-demo", "--identities", "4", "--frames", "60",
                                                           "--device", "cpu"])
    assert four.stem == "ablation-cpu-demo-4x60-128px" and four.variants[0] == "A1"


def test_bad_custom_variant_override_is_one_line(capsys):
    code, _, err = bench(capsys, "--cpu-demo", "--device", "cpu", "--variant", "fix:data.no_such_field=1")
    assert code == 2 and err.count("\n") == 1 and "no_such_field" in err


def test_mouth_table_and_verdict():
    row = lambda v, s, hm, hl: {"variant": v, "seed": s, "heldout_psnr": 28.0, "transfer_psnr": 27.0,
                                "heldout_ssim": 0.9, "transfer_ssim": 0.9,
                                "heldout_mouth_psnr": hm, "heldout_lip_motion": hl, "transfer_mouth_psnr": None,
                                "transfer_lip_motion": None}
    rows = [row("M", 0, 22.0, 0.9), row("baseline", 0, 21.0, 0.5), row("M@seed1", 1, 21.5, 0.8)]
    md = ablation.mouth_table(rows)
    assert "| M | **28.00** | **22.00** | **0.900** | **27.00** | — | — |" in md
    floor = ablation.noise_floor(rows)
    assert floor["heldout_mouth_psnr"] == pytest.approx(0.5) and floor["heldout_lip_motion"] == pytest.approx(0.1)
    text = ablation.mouth_verdict(rows, floor)
    assert "held-out mouth PSNR +1 dB (M ahead, floor 0.5)" in text and "held-out lip motion +0.4 (M ahead" in text


def test_lips_only_micro_run_reports_the_mouth(tmp_path, capsys):
    from fastminerf.data.synth.cast import synthesize_cast

    cast = tmp_path / "cast"
    synthesize_cast(cast, n_identities=2, n_frames=10, size=32, seed=0, write_obj=False, workers=1, progress=False)
    out = tmp_path / "results"
    code, stdout, err = bench(capsys, "--cpu-tiny", "--cast", str(cast), "--mouth", "lips-only", "--variants", "M",
              "--variant", "fix:data.mouth_fraction=0.5", "--steps", "1", "--noise-seeds", "0", "--render-frames", "0",
              "--transfer-frames", "1", "--smoke", "--out", str(out), "--work", str(tmp_path / "work"), *MICRO)
    assert code == 0, err[-2000:]
    assert "M mouth: held-out mouth PSNR" in stdout
    payload = json.loads((out / "ablation-cpu-tiny-lips-only-smoke.json").read_text())
    assert [x["variant"] for x in payload["rows"]] == ["M", "fix"]
    assert all(x["heldout_mouth_psnr"] > 0 and x["transfer_mouth_psnr"] > 0 for x in payload["rows"])
    assert payload["setup"]["cast"]["path"] == str(tmp_path / "work" / "cast-lips-only")
    assert (tmp_path / "work" / "cast-lips-only" / "id000" / "flame").is_dir()  # INSTA layout, no pocket
    md = (out / "ablation-cpu-tiny-lips-only-smoke.md").read_text()
    assert "SMOKE TEST" in md and "## The mouth" in md and "| fix | M + data.mouth_fraction=0.5 |" in md
    assert "heldout_mouth_psnr" in (out / "ablation-cpu-tiny-lips-only-smoke.csv").read_text().splitlines()[0]


def test_landmark_opening_is_gap_over_width():
    lm = np.zeros((3, 478, 3), np.float32)
    lm[:, 61, 0], lm[:, 291, 0] = 10, 30          # mouth 20 px wide
    lm[:, 13, 1], lm[:, 14, 1] = 50, [50, 55, 60]  # gap 0, 5, 10 px
    assert openings_of(lm, np.array([True, True, False])) == [0.0, 0.25, None]
