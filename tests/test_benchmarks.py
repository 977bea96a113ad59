"""Training benchmarks: train_to_target's bookkeeping, variant presets on another base, and
benchmarks/train_time.py + benchmarks/ablation.py — argument errors (clean, exit 2) and a
micro end-to-end run of each that writes every result file into a temp folder."""
import csv
import json
import subprocess
import sys
from itertools import islice
from pathlib import Path

import pytest

from fastminerf.config import load_config, load_variant
from fastminerf.train import target as target_mod
from fastminerf.train.target import eval_steps, train_to_target

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
from common import BenchError, fit_power_law, require_matplotlib  # noqa: E402

# tiny training settings for the end-to-end runs (32² cast, a handful of steps)
MICRO = ["--set", "data.rays_per_batch=128", "--set", "data.frames_per_batch=4",
         "--set", "render.occupancy_resolution=32", "--threads", "1"]


def bench(script: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


# ---------------------------------------------------------------------------- library pieces

class FakeTrainer:
    """Steps a counter; the held-out metric is a function of the step (patched below)."""

    class cfg:
        class train:
            steps = 1000

    def __init__(self):
        self.step = 0

    def train_step(self):
        self.step += 1


@pytest.fixture
def metric_of_step(monkeypatch):
    monkeypatch.setattr(target_mod, "heldout_metric", lambda tr, metric, frames: tr.step / 10)


def test_eval_schedule_is_geometric_with_a_minimum_gap():
    assert list(islice(eval_steps(25, 1.5, 10), 5)) == [25, 38, 57, 86, 129]
    assert list(islice(eval_steps(10, 1.15, 10), 4)) == [10, 20, 30, 40]
    with pytest.raises(ValueError):
        next(eval_steps(0))


def test_train_to_target_reaches_and_brackets(metric_of_step):
    seen = []
    res = train_to_target(FakeTrainer(), 5.0, schedule=[20, 40, 60, 80], on_eval=seen.append)
    assert res.reached and res.stop == "target"
    assert (res.steps, res.lower_steps, res.total_steps) == (60, 40, 60)
    assert [p.step for p in seen] == [20, 40, 60] and res.best == 6.0
    assert res.train_seconds is not None and res.train_seconds <= res.total_train_seconds + 1e-9


def test_train_to_target_not_reached_ends_with_a_final_eval_and_snapshot(metric_of_step):
    res = train_to_target(FakeTrainer(), 99.0, max_steps=50, schedule=[20, 40], snapshot_step=30,
                          snapshot=lambda tr: {"at": tr.step})
    assert not res.reached and res.stop == "step cap" and res.steps is None
    assert [p.step for p in res.history] == [20, 40, 50]
    assert res.snapshot == {"at": 30} and res.snapshot_step == 30


def test_train_to_target_goes_on_to_the_snapshot_step(metric_of_step):
    res = train_to_target(FakeTrainer(), 2.0, schedule=eval_steps(10, 1.0, 10), snapshot_step=70,
                          snapshot=lambda tr: {"at": tr.step})
    assert res.reached and res.steps == 20 and res.total_steps == 70 and res.snapshot == {"at": 70}
    assert [p.step for p in res.history] == [10, 20]  # no evaluations after the target


def test_train_to_target_time_budget(metric_of_step):
    res = train_to_target(FakeTrainer(), 99.0, max_seconds=0.0)
    assert res.stop == "time budget" and res.total_steps == 0 and len(res.history) == 1
    with pytest.raises(ValueError):
        train_to_target(FakeTrainer(), 1.0, metric="lpips")


def test_power_law_fit_recovers_the_exponent():
    fit = fit_power_law([1, 2, 4, 8], [3 * n**0.4 for n in [1, 2, 4, 8]])
    assert fit["a"] == pytest.approx(0.4) and fit["c"] == pytest.approx(3.0) and fit["points"] == 4
    assert fit_power_law([1, 2], [5.0, None]) is None


def test_missing_matplotlib_is_one_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails as if not installed
    with pytest.raises(BenchError, match=r"pip install -e '\.\[bench\]'"):
        require_matplotlib()


def test_variant_on_another_base_keeps_only_its_own_settings():
    v = load_variant("M_k32", "insta_512_gpu", ["train.steps=7"])
    base = load_config("insta_512_gpu")
    assert v.model.rank == 32 and v.name == "M_k32" and v.train.steps == 7
    assert v.data.rays_per_batch == base.data.rays_per_batch and v.model.grid_levels == base.model.grid_levels
    assert load_variant("H3").model.stages == 3 and load_variant("H3").data.rays_per_batch == load_config("tiny_cpu").data.rays_per_batch


# ---------------------------------------------------------------------------- scripts

@pytest.mark.parametrize("args, message", [
    (["--cpu-tiny", "--identities", "0,2"], "positive"),
    (["--cpu-tiny", "--identities", "a"], "integers"),
    (["--cpu-tiny", "--target", "-3"], "positive"),
    (["--cpu-tiny", "--max-steps", "10", "--quality-steps", "50"], "exceeds"),
    (["--cpu-tiny", "--metric", "ssim", "--target", "14"], "out of reach"),
    (["--cpu-tiny", "--threads", "zero"], "--threads"),
])
def test_train_time_bad_arguments(args, message):
    r = bench("train_time.py", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("args, message", [
    (["--cpu-tiny", "--variants", "M,Z9"], "unknown variant"),
    (["--cpu-tiny", "--steps", "0"], "positive"),
    (["--cpu-tiny", "--noise-seeds", "-1"], "noise-seeds"),
    (["--cpu-tiny", "--render-sizes", "8"], "render sizes"),
])
def test_ablation_bad_arguments(args, message):
    r = bench("ablation.py", *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("script", ["train_time.py", "ablation.py"])
def test_bad_cast_folder_is_one_line(script, tmp_path):
    r = bench(script, "--cpu-tiny", "--cast", str(tmp_path / "missing"), "--out", str(tmp_path / "out"), "--no-plot"
              if script == "train_time.py" else "--render-frames=0", *MICRO)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [f"error: {tmp_path / 'missing'}: not a folder"]
    assert not (tmp_path / "out").exists()


def test_real_avatar_missing_clip_is_one_line(tmp_path):
    r = bench("real_avatar.py", "--videos", str(tmp_path), "--clips", "nobody", "--out", str(tmp_path / "out"),
              "--work", str(tmp_path / "work"))
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"error: {tmp_path}: no clip nobody (.mp4); the shared data is needed for this benchmark"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message shown without a GPU")
def test_gpu_mode_without_gpu_says_so():
    r = bench("train_time.py")
    assert r.returncode == 2 and "--cpu-tiny" in r.stderr


@pytest.fixture(scope="module")
def micro_cast(tmp_path_factory):
    from fastminerf.data.synth.cast import synthesize_cast

    out = tmp_path_factory.mktemp("bench") / "cast"
    synthesize_cast(out, n_identities=2, n_frames=10, size=32, seed=0, write_obj=False, workers=1, progress=False)
    return out


def _plot_flag() -> list[str]:
    try:
        import matplotlib  # noqa: F401
        return []
    except ImportError:
        return ["--no-plot"]


def test_train_time_micro_run_records_not_reached(micro_cast, tmp_path):
    out = tmp_path / "results"
    r = bench("train_time.py", "--cpu-tiny", "--cast", str(micro_cast), "--identities", "2", "--singles", "1",
              "--target", "60", "--max-steps", "4", "--quality-steps", "3", "--first-eval", "2",
              "--transfer-frames", "1", "--out", str(out), "--work", str(tmp_path / "work"), *MICRO, *_plot_flag())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "single id000: NOT reached" in r.stdout and "joint N=2: NOT reached" in r.stdout
    stem = out / "train_time-cpu-tiny"
    payload = json.loads(stem.with_suffix(".json").read_text())
    rows = list(csv.DictReader(stem.with_suffix(".csv").open()))
    assert [(x["run"], x["reached"], x["stop"]) for x in rows] == [("single id000", "False", "step cap"),
                                                                      ("joint N=2", "False", "step cap")]
    joint = payload["rows"][1]
    assert joint["quality_step"] == 3 and joint["transfer_psnr"] > 0 and joint["heldout_psnr"] > 0
    assert payload["summary"][0]["separate_how"].startswith("not reached")
    assert payload["environment"]["command"].startswith("python") and len(payload["setup"]["load_average_before"]) == 3
    md = stem.with_suffix(".md").read_text()
    assert "| 2 | False |" in md and "not reached" in md
    if not _plot_flag():
        assert stem.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_ablation_micro_run_writes_the_table(micro_cast, tmp_path):
    out = tmp_path / "results"
    r = bench("ablation.py", "--cpu-tiny", "--cast", str(micro_cast), "--variants", "baseline,M", "--steps", "2",
              "--noise-seeds", "0", "--render-sizes", "32", "--transfer-frames", "1", "--out", str(out),
              "--work", str(tmp_path / "work"), *MICRO)
    assert r.returncode == 0, r.stderr[-2000:]
    payload = json.loads((out / "ablation-cpu-tiny.json").read_text())
    assert [x["variant"] for x in payload["rows"]] == ["baseline", "M"]
    assert all(x["steps"] == 2 and x["transfer_psnr"] > 0 and x["heldout_ssim"] > 0 for x in payload["rows"])
    assert payload["render_speed"][0]["size"] == "32²" and payload["render_speed"][0]["frames/s"] > 0
    md = (out / "ablation-cpu-tiny.md").read_text()
    assert "| baseline | [e, i] concatenated" in md and "## Render speed" in md
    assert len((out / "ablation-cpu-tiny.csv").read_text().splitlines()) == 3
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
