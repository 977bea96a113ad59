"""Training: a 2-step smoke run of every preset, exact resume, checkpoints, CLI errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fastminerf.cli import main
from fastminerf.config import CONFIG_DIR, load_config
from fastminerf.data.cast import load_cast
from fastminerf.model.checkpoint import load_checkpoint
from fastminerf.train.trainer import Trainer, train

from fixtures import make_identity

PRESETS = sorted(str(p.relative_to(CONFIG_DIR)) for p in CONFIG_DIR.rglob("*.yaml"))
SMALL = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "render.occupancy_resolution=32"]


@pytest.fixture(scope="module")
def cast_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cast")
    for k in range(2):
        make_identity(root, f"id{k}", n_frames=6, size=32, subdivisions=2, colour=(200, 60 + 80 * k, 60))
    return root


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_trains_two_steps(preset, cast_dir, tmp_path):
    cfg = load_config(preset, SMALL + ["train.steps=2"])
    run_dir, metrics = train(cfg, [cast_dir], tmp_path, progress=False)
    assert (run_dir / "config.yml").is_file()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000000002.ckpt"]
    assert metrics["step"] == 2 and metrics["psnr"] > 0 and set(metrics["per_identity"]) == {"id0", "id1"}


def test_resume_continues_exactly(cast_dir, tmp_path):
    cfg = load_config("tiny_cpu", SMALL + ["train.steps=6"])
    cast = load_cast([cast_dir])
    a = Trainer(cfg, cast, tmp_path / "a")
    for _ in range(3):
        a.train_step()
    ckpt = a.save()
    uninterrupted = [a.train_step().loss for _ in range(2)]
    b = Trainer(cfg, cast, tmp_path / "b", resume=load_checkpoint(ckpt))
    assert b.step == 3
    resumed = [b.train_step().loss for _ in range(2)]
    assert resumed[0] == uninterrupted[0]  # the next step is bit-identical
    # later steps agree to float round-off (BLAS may sum in another order at another address)
    assert resumed[1] == pytest.approx(uninterrupted[1], rel=1e-4)


def test_non_finite_steps_are_skipped_then_training_stops(cast_dir, tmp_path, monkeypatch):
    from fastminerf.errors import TrainingDiverged
    from fastminerf.model import avatar as avatar_mod

    cfg = load_config("tiny_cpu", SMALL + ["train.steps=50"])
    t = Trainer(cfg, load_cast([cast_dir]), tmp_path)
    t.train_step()
    before = {k: v.detach().clone() for k, v in t.avatar.named_parameters()}
    monkeypatch.setattr(avatar_mod, "photometric", lambda *a, **k: torch.tensor(float("nan"), requires_grad=True) * a[0].sum())
    st = t.train_step()  # NaN loss: counted, weights untouched
    assert st.loss != st.loss and t.bad_steps == 1
    assert all(torch.equal(before[k], v) for k, v in t.avatar.named_parameters())
    with pytest.raises(TrainingDiverged, match="diverged"):
        for _ in range(Trainer.MAX_BAD_STEPS):
            t.train_step()
    monkeypatch.undo()
    t.bad_steps = 0
    t.train_step()
    assert t.bad_steps == 0


def test_expression_dropout_replaces_whole_frames_by_the_mean(cast_dir, tmp_path):
    t = Trainer(load_config("tiny_cpu", SMALL + ["train.steps=1"]), load_cast([cast_dir]), tmp_path)
    e = torch.rand(64, t.avatar.expr_mean.shape[0]) + 5.0
    assert torch.equal(t.drop_expressions(e, 0.0), e)
    assert torch.equal(t.drop_expressions(e, 1.0), t.avatar.expr_mean.expand_as(e))
    half = t.drop_expressions(e, 0.5)
    dropped = (half == t.avatar.expr_mean).all(1)
    assert torch.equal(half[~dropped], e[~dropped]) and 10 < int(dropped.sum()) < 54


def test_checkpoint_write_is_atomic(cast_dir, tmp_path, monkeypatch):
    cfg = load_config("tiny_cpu", SMALL + ["train.steps=1"])
    t = Trainer(cfg, load_cast([cast_dir]), tmp_path)
    t.train_step()
    good = t.save()
    before = good.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        t.save()  # same step → same file name: the old file must survive intact
    assert good.read_bytes() == before and sorted(p.name for p in good.parent.iterdir()) == [good.name]


def test_cli_bad_inputs(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    make_identity(tmp_path / "mixed", "a", subdivisions=2)
    make_identity(tmp_path / "mixed", "b", subdivisions=1)
    for args, msg in (([str(tmp_path / "missing")], "not found"),
                      ([str(tmp_path / "empty")], "empty or not an identity folder"),
                      ([str(tmp_path / "mixed")], "topology differs")):
        assert main(["train", "--identities", *args, "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and msg in err and len(err.splitlines()) == 1
    # a real process: exit code 2, one line, no traceback
    r = subprocess.run([sys.executable, "-m", "fastminerf", "train", "--identities", str(tmp_path / "missing")],
                       capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "not found" in r.stderr


def test_render_and_eval_commands(cast_dir, tmp_path, capsys):
    cfg = load_config("tiny_cpu", SMALL + ["train.steps=2"])
    run_dir, _ = train(cfg, [cast_dir], tmp_path, progress=False)
    out = tmp_path / "r.mp4"
    assert main(["render", "--checkpoint", str(run_dir), "--identity", "id0", "--expressions-from", "id1",
                 "--side-by-side", "--max-frames", "2", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert main(["eval", "--checkpoint", str(run_dir), "--json", str(tmp_path / "m.json"), "--frames", "1"]) == 0
    m = json.loads((tmp_path / "m.json").read_text())
    assert {"psnr", "ssim", "per_identity"} <= set(m)
    assert main(["render", "--checkpoint", str(run_dir), "--identity", "nobody", "--out", str(out)]) == 2
    assert "unknown identity 'nobody'" in capsys.readouterr().err
    (tmp_path / "bad.ckpt").write_bytes(b"not a checkpoint")
    assert main(["eval", "--checkpoint", str(tmp_path / "bad.ckpt")]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err


def test_transfer_eval_with_the_identitys_own_mean_expression(tmp_path):
    """evaluate_transfer(expression_of_a=True) keeps the pairs and the driven meshes but
    conditions on A's mean expression (benchmarks/expression_leak.py)."""
    from fastminerf.api import cast_of, load_avatar
    from fastminerf.data.synth.cast import synthesize_cast
    from fastminerf.eval.evaluate import evaluate_transfer

    root = tmp_path / "cast"
    synthesize_cast(root, n_identities=2, n_frames=10, size=32, seed=1, write_obj=False, workers=1, progress=False,
                    contact_tile=32)
    run, _ = train(load_config("tiny_cpu", SMALL + ["train.steps=2"]), [root], tmp_path / "runs", progress=False)
    avatar = load_avatar(run, device="cpu")[0].eval()
    with torch.no_grad():
        avatar.conditioning.W2.weight.mul_(50.0)  # make the expression code matter after 2 steps
    cast = cast_of(avatar)
    own, mean = (evaluate_transfer(avatar, cast, 1, expression_of_a=m) for m in (False, True))
    assert set(own["transfer_pairs"]) == set(mean["transfer_pairs"]) == {"id000<-id001", "id001<-id000"}
    assert own["transfer_psnr"] != mean["transfer_psnr"]
