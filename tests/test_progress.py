"""Long jobs show progress with an ETA (one shared helper); --quiet keeps them silent."""
import re

import pytest

from fastminerf.cli import main
from fastminerf.config import load_config
from fastminerf.progress import Progress, format_eta, track
from fastminerf.train.trainer import train

from fixtures import make_identity

SMALL = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.steps=2", "render.occupancy_resolution=32", "train.threads=1", "train.final_eval_frames=1"]
ETA = re.compile(r"ETA (\d\d:\d\d|--:--)")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    for k in range(2):
        make_identity(root / "cast", f"id{k}", n_frames=8, size=16, subdivisions=1, colour=(200, 60 + 80 * k, 60))
    run, _ = train(load_config("tiny_cpu", SMALL), [root / "cast"], root / "runs", progress=False)
    return run


def test_format_eta():
    assert format_eta(5) == "00:05" and format_eta(3725) == "1:02:05" and format_eta(float("nan")) == "--:--"


def test_plain_lines_count_rate_and_eta(capsys):
    with Progress(4, "job", unit="frame", every=0.0) as bar:
        for k in range(1, 5):
            bar.update(k, f"detail {k}")
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 4 and lines[-1].startswith("job 4/4") and "frame/s" in lines[-1] and "detail 4" in lines[-1]
    assert all(ETA.search(line) for line in lines)
    assert list(track(range(3), 3, "t", enabled=False)) == [0, 1, 2]
    assert capsys.readouterr().err == ""


def test_eval_shows_progress_with_eta_and_quiet_is_silent(run_dir, capsys):
    assert main(["eval", "--checkpoint", str(run_dir)]) == 0
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.startswith("eval ")]
    assert lines and lines[-1].startswith("eval 2/2") and ETA.search(lines[-1]) and "psnr" in lines[-1]
    assert out.out.lstrip().startswith("{")  # stdout stays the JSON
    assert main(["eval", "--checkpoint", str(run_dir), "--quiet"]) == 0
    out = capsys.readouterr()
    assert not ETA.search(out.err) and not ETA.search(out.out)


def test_render_shows_progress_and_quiet_is_silent(run_dir, tmp_path, capsys):
    args = ["render", "--checkpoint", str(run_dir), "--identity", "id0", "--max-frames", "3", "--out"]
    assert main(args + [str(tmp_path / "a.gif")]) == 0
    err = capsys.readouterr().err
    assert any(line.startswith("render 3/3") and ETA.search(line) for line in err.splitlines()), err
    assert main(args + [str(tmp_path / "b.gif"), "--quiet"]) == 0
    assert not ETA.search(capsys.readouterr().err)


def test_training_final_eval_shows_progress(run_dir, tmp_path, capsys):
    cast = run_dir.parent.parent.parent.parent / "cast"
    train(load_config("tiny_cpu", SMALL), [cast], tmp_path, progress=True)
    err = capsys.readouterr().err
    assert any(line.startswith("step 2/2") and ETA.search(line) for line in err.splitlines()), err
    assert any(line.startswith("eval 2/2") and ETA.search(line) for line in err.splitlines()), err
    train(load_config("tiny_cpu", SMALL), [cast], tmp_path / "q", progress=False)
    assert not ETA.search(capsys.readouterr().err)
