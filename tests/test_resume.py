"""Resume: the checkpoint's config (threads included), safe --set applied and said, unsafe
ones refused in one line, stale temps removed at start, the time budget continued."""
import os

import pytest
import torch

from fastminerf.cli import main
from fastminerf.model.checkpoint import latest_checkpoint, load_checkpoint

from fixtures import make_identity

SMALL = ["data.rays_per_batch=128", "data.frames_per_batch=4", "train.eval_every=0", "train.save_every=2",
         "train.max_minutes=null", "render.occupancy_resolution=16", "train.threads=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    make_identity(root / "cast", "a", n_frames=4, size=16, subdivisions=1)
    argv = ["train", "--identities", str(root / "cast"), "--out", str(root / "runs"), "--quiet",
            *sum((["--set", s] for s in SMALL + ["train.steps=2"]), [])]
    assert main(argv) == 0
    return root, next((root / "runs").rglob("checkpoints")).parent


def _resume(root, run_dir, *extra):
    return main(["train", "--identities", str(root / "cast"), "--quiet", "--resume", str(run_dir), *extra])


def test_threads_and_time_are_recorded(run):
    _, run_dir = run
    state = load_checkpoint(latest_checkpoint(run_dir))
    assert state["config"]["train"]["threads"] == 1 and state["train_seconds"] > 0


def test_unsafe_set_on_resume_is_refused_in_one_line(run, capsys):
    root, run_dir = run
    before = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert _resume(root, run_dir, "--set", "model.rank=4") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "model.rank" in err
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == before


def test_safe_set_on_resume_is_applied_and_stale_temps_go(run, caplog):
    root, run_dir = run
    stale = run_dir / "checkpoints" / ".step-000009.tmp-999999999.ckpt"
    stale.write_bytes(b"half")
    stale_metrics = run_dir / ".metrics.tmp-999999999.json"
    stale_metrics.write_text("{")
    with caplog.at_level("INFO"):
        assert _resume(root, run_dir, "--set", "train.steps=4", "--set", "train.threads=1") == 0
    assert "train.steps=4" in caplog.text
    assert load_checkpoint(latest_checkpoint(run_dir))["step"] == 4
    assert not stale.exists() and not stale_metrics.exists()


def test_resumed_threads_come_from_the_checkpoint(run):
    root, run_dir = run
    torch.set_num_threads(2)
    try:
        assert _resume(root, run_dir, "--set", "train.steps=6") == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))


def test_final_evaluation_is_bounded_per_identity(tmp_path):
    make_identity(tmp_path / "cast", "a", n_frames=30, size=16, subdivisions=1)  # 3 held-out frames
    argv = ["train", "--identities", str(tmp_path / "cast"), "--out", str(tmp_path / "runs"), "--quiet",
            *sum((["--set", s] for s in SMALL + ["train.steps=1", "train.final_eval_frames=2"]), [])]
    assert main(argv) == 0
    metrics = next((tmp_path / "runs").rglob("metrics.json")).read_text()
    assert '"n_frames": 2' in metrics
