"""Personalisation, new identities, transfer from an expression file, the code map, smoothing.

One tiny model (two breathing-sphere identities, 32², a few steps) is trained once for the
module; every test fine-tunes copies of it for a few steps.
"""
import json

import numpy as np
import pytest
import torch

from fastminerf.api import cast_of, load_avatar, render_sequence
from fastminerf.cli import main
from fastminerf.config import load_config
from fastminerf.data.cast import load_cast
from fastminerf.data.expressions import read_expression_sequence
from fastminerf.data.rays import RayBatcher
from fastminerf.eval.metrics import flicker
from fastminerf.model.checkpoint import latest_checkpoint, load_checkpoint
from fastminerf.model.frames import frames_from_cast
from fastminerf.render.smooth import smooth_sequence
from fastminerf.render.transfer import driven_frames, expression_frames
from fastminerf.render.views import background_color, render_image
from fastminerf.train.adapt import add_identity, personalize
from fastminerf.train.trainer import train

from fixtures import make_identity

SMALL = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "render.occupancy_resolution=32", "train.steps=4"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("adapt")
    for k in range(2):
        make_identity(root / "cast", f"id{k}", n_frames=8, size=32, colour=(200, 60 + 80 * k, 60), seed=k, basis=True)
    make_identity(root / "new", "id9", n_frames=8, size=32, colour=(90, 200, 60), seed=9, basis=True)
    make_identity(root / "bad", "coarse", n_frames=4, size=32, subdivisions=1)
    make_identity(root / "bad", "fiveexp", n_frames=4, size=32, n_exp=5)
    make_identity(root / "bad", "id1", n_frames=4, size=32)
    run, _ = train(load_config("tiny_cpu", SMALL), [root / "cast"], root / "runs", progress=False)
    return root, run


def _state(path):
    return load_checkpoint(path)["model"]


def _render_test_frames(avatar, cast):
    """Held-out frame of every identity and one transfer frame (id0 driven by id1): [3, H, W, 3]."""
    bg = background_color("white")
    out = []
    for k in range(cast.n_identities):
        f = cast.frames("test", k)[0]
        fb = frames_from_cast(avatar, cast, np.array([f]), own_latents=False)
        out.append(render_image(avatar, fb, torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f]),
                                cast.height, cast.width, bg)["rgb"])
    fb, c2h, K = driven_frames(avatar, cast, 0, cast.frames("test", 1)[:1])
    out.append(render_image(avatar, fb, c2h[0], K[0], cast.height, cast.width, bg)["rgb"])
    return torch.stack(out)


def test_batcher_draws_only_the_given_frames(data):
    cast = load_cast([data[0] / "cast"])
    pick = cast.frames("train", 1)[:3]
    b = RayBatcher(cast, 512, 4, frames=pick, seed=1).sample()
    assert set(b.frame.tolist()) <= set(pick.tolist()) and set(b.identity.tolist()) == {1}


def test_personalize_changes_only_what_it_should(data, tmp_path):
    root, run = data
    r = personalize(run, "id1", steps=3, eval_frames=1, out=tmp_path / "p", progress=False)
    before, after = _state(latest_checkpoint(run)), _state(r.checkpoint)
    for name in before:
        if name.startswith("conditioning."):
            assert torch.equal(before[name], after[name]), name  # the multiplicative module is frozen
    assert not torch.equal(before["field.grid.table"], after["field.grid.table"])
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith("field.") and "grid" not in n)
    ids, lat = after["identity_codes.weight"], after["latent_codes.weight"]
    assert torch.equal(ids[0], before["identity_codes.weight"][0]) and not torch.equal(ids[1], before["identity_codes.weight"][1])
    assert torch.equal(lat[:8], before["latent_codes.weight"][:8])  # id0's latent rows: untouched
    assert r.before["n_frames"] == r.after["n_frames"] == 1 and r.frames == 7
    report = json.loads((tmp_path / "p" / "adapt.json").read_text())
    assert report["identity"] == "id1" and report["settings"]["frozen"] == ["conditioning"]


def test_personalize_cli_freeze_groups(data, tmp_path, capsys):
    root, run = data
    out = tmp_path / "p2"
    assert main(["personalize", "--checkpoint", str(run), "--identity", "id0", "--steps", "2", "--freeze",
                 "conditioning,grid", "--eval-frames", "1", "--out", str(out), "--quiet"]) == 0
    assert "held-out PSNR" in capsys.readouterr().out
    before, after = _state(latest_checkpoint(run)), _state(latest_checkpoint(out))
    assert torch.equal(before["field.grid.table"], after["field.grid.table"])


def test_adapt_grows_the_checkpoint_and_keeps_the_others_bit_identical(data, tmp_path):
    root, run = data
    r = add_identity(run, root / "new" / "id9", seconds=0.2, steps=3, eval_frames=1, out=tmp_path / "a", progress=False)
    base, _ = load_avatar(run, device="cpu")
    grown, _ = load_avatar(r.checkpoint, device="cpu")
    info = grown.info
    assert info.names == ["id0", "id1", "id9"] and info.frames_per_identity == [8, 8, 8]
    assert info.identity_canonicals.shape[0] == 3 and info.identity_roots[-1].endswith("id9")
    assert grown.identity_codes.weight.shape[0] == 3 and grown.latent_codes.weight.shape[0] == 24
    assert r.frames == 5 and r.settings["coverage"]["in_box"] > 0
    for name, t in base.state_dict().items():  # every old entry is unchanged
        g = grown.state_dict()[name]
        assert torch.equal(g[: t.shape[0]] if name in ("identity_codes.weight", "latent_codes.weight") else g, t), name
    cast = cast_of(base)
    assert torch.equal(_render_test_frames(base, cast), _render_test_frames(grown, cast))
    # the new identity renders; latent rows line up whether its cast is alone or with the others
    full = load_cast([root / "cast" / "id0", root / "cast" / "id1", root / "new" / "id9"])
    alone = load_cast([root / "new" / "id9"])
    f_full, f_alone = full.frames("train", 2)[:2], alone.frames("train", 0)[:2]
    assert torch.equal(frames_from_cast(grown, full, f_full, True).latent, frames_from_cast(grown, alone, f_alone, True).latent)
    assert _render_test_frames(grown, full).shape[0] == 4


def test_transfer_from_expression_file(data, tmp_path, capsys):
    root, run = data
    avatar, _ = load_avatar(run, device="cpu")
    cast = cast_of(avatar)
    own = cast.frames("train", 0)[:3]
    fb, c2h, K = expression_frames(avatar, cast, 0, cast.expressions[own])
    torch.testing.assert_close(fb.vertices, torch.from_numpy(cast.vertices(own)), atol=1e-6, rtol=0)  # basis is exact here
    assert torch.equal(c2h[0], c2h[2])  # static camera
    path = tmp_path / "e.txt"
    np.savetxt(path, cast.expressions[own])
    np.testing.assert_allclose(read_expression_sequence(path, 4), cast.expressions[own], atol=1e-6)
    out = tmp_path / "t.gif"
    assert main(["transfer", "--checkpoint", str(run), "--identity", "id0", "--expressions", str(path), "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    capsys.readouterr()  # the render's progress line
    # a checkpoint without an expression basis: one clear line
    state = load_checkpoint(run)
    state["cast"]["expression_basis"] = None
    nobasis = tmp_path / "nobasis.ckpt"
    torch.save(state, nobasis)
    assert main(["transfer", "--checkpoint", str(nobasis), "--identity", "id0", "--expressions", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no expression basis" in err and len(err.splitlines()) == 1
    np.save(tmp_path / "short.npy", np.zeros((3, 2), np.float32))
    assert main(["transfer", "--checkpoint", str(run), "--identity", "id0", "--expressions", str(tmp_path / "short.npy"),
                 "--out", str(out)]) == 2
    assert "2 expression coefficients per frame, the model uses 4" in capsys.readouterr().err


def test_codes_map_written(data, tmp_path):
    root, run = data
    png, js = tmp_path / "codes.png", tmp_path / "codes.json"
    assert main(["codes", "--checkpoint", str(run), "--out", str(png), "--json", str(js)]) == 0
    from PIL import Image

    assert Image.open(png).size == (720, 560)
    m = json.loads(js.read_text())
    assert m["names"] == ["id0", "id1"] and len(m["xy"]) == 2 and m["explained"][0] == pytest.approx(1.0)


def test_smoothing_reduces_flicker(data):
    root, run = data
    avatar, _ = load_avatar(run, device="cpu")
    cast = cast_of(avatar, names=["id0"])
    t = np.arange(10, dtype=np.float32)
    e = np.zeros((10, 4), np.float32)
    e[:, 0] = 0.8 * np.sin(t / 4) + np.random.default_rng(0).normal(0, 0.6, 10)  # motion + tracking jitter
    x = torch.from_numpy(e)
    assert np.abs(np.diff(smooth_sequence(x, 2.0).numpy(), axis=0)).mean() < 0.5 * np.abs(np.diff(e, axis=0)).mean()
    raw = list(render_sequence(avatar, cast, "id0", expressions=e, smooth=0.0, size=16))
    smooth = list(render_sequence(avatar, cast, "id0", expressions=e, smooth=2.0, size=16))
    assert len(raw) == len(smooth) == 10
    assert flicker(smooth) < 0.7 * flicker(raw), (flicker(smooth), flicker(raw))
    # chunked smoothing (halo of 3σ) equals smoothing the whole sequence at once
    from fastminerf.api import sequence_frames, smoothed_frames
    from fastminerf.render.smooth import smooth_frames

    n, build, _ = sequence_frames(avatar, cast, "id0", expressions=e)
    whole = smooth_frames(build(0, n)[0], 2.0).vertices
    chunked = torch.cat([fb.vertices for fb, _, _ in smoothed_frames(n, build, 2.0, chunk=5)])
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=0)


def test_bad_inputs_one_line_errors(data, tmp_path, capsys):
    root, run = data

    def error(argv) -> str:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        return err

    assert "unknown identity 'nobody'" in error(["personalize", "--checkpoint", str(run), "--identity", "nobody"])
    assert "unknown parameter group 'brain'" in error(["personalize", "--checkpoint", str(run), "--identity", "id0",
                                                      "--freeze", "brain"])
    state = load_checkpoint(run)
    state["config"]["model"]["grid_log2_size"] = 12  # weights of another hash-grid size
    torch.save(state, tmp_path / "other.ckpt")
    for cmd in (["personalize", "--identity", "id0"], ["adapt", "--data", str(root / "new" / "id9")]):
        assert "does not match its config" in error([cmd[0], "--checkpoint", str(tmp_path / "other.ckpt"), *cmd[1:]])
    for name, msg in (("coarse", "mesh topology differs from the model's"),
                      ("fiveexp", "5 expression coefficients, the model uses 4"),
                      ("id1", "already in the model")):
        err = error(["adapt", "--checkpoint", str(run), "--data", str(root / "bad" / name)])
        assert msg in err and name in err  # the folder is named


def test_expressions_constant_in_training_are_ignored(data):
    """A coefficient that never varied in the training cast (std at the floor) must not blow
    up the conditioning when a new identity or a driver uses it."""
    import dataclasses

    from fastminerf.model.avatar import Avatar
    from fastminerf.model.cast_info import EXPR_STD_FLOOR
    from fastminerf.model.frames import FrameBatch

    root, run = data
    avatar, cfg = load_avatar(run, device="cpu")
    std = avatar.info.expr_std.copy()
    std[2] = EXPR_STD_FLOOR
    a = Avatar(cfg.model, cfg.render, dataclasses.replace(avatar.info, expr_std=std))
    e = torch.zeros(2, 4)
    e[1, 2] = 500.0
    fb = FrameBatch(vertices=torch.zeros(2, 1, 3), expression=e, identity=torch.zeros(2, dtype=torch.long),
                    latent=torch.zeros(2, a.latent_dim))
    m = a.condition(fb).module
    torch.testing.assert_close(m[0], m[1])
