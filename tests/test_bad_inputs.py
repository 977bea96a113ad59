"""Bad-input corpus: every case exits 2 with one line ``error: <file>: <problem>``, no
traceback, and writes or overwrites nothing. Inputs are built on the fly; commands run
in-process through the CLI's ``main()`` so the whole corpus costs seconds."""
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fastminerf.cli import main
from fastminerf.config import load_config
from fastminerf.data.layout import read_identity
from fastminerf.train.trainer import train

from fixtures import make_identity

SMALL = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
         "train.max_minutes=null", "render.occupancy_resolution=32", "train.threads=1"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 2-identity cast and a 2-step run of it (shared, read-only for the cases)."""
    root = tmp_path_factory.mktemp("world")
    cast = root / "cast"
    for k in range(2):
        make_identity(cast, f"id{k}", n_frames=6, size=32, subdivisions=1, colour=(200, 60 + 80 * k, 60))
    run, _ = train(load_config("tiny_cpu", SMALL + ["train.steps=2"]), [cast], root / "runs", progress=False)
    return {"cast": cast, "run": run, "ckpt": next(run.glob("*.ckpt")) if list(run.glob("*.ckpt")) else run}


def _edit_json(ident: Path, fname: str, edit) -> None:
    p = ident / fname
    d = json.loads(p.read_text())
    edit(d)
    p.write_text(json.dumps(d))


def _bad_identity(tmp: Path, world, fname: str, edit) -> Path:
    d = tmp / "bad"
    shutil.copytree(world["cast"] / "id0", d / "id0")
    _edit_json(d / "id0", fname, edit)
    return d / "id0"


def _frame0(key, value):
    return lambda d: d["frames"][0].__setitem__(key, value)


def _top(key, value):
    return lambda d: d.__setitem__(key, value)


TRAIN_JSON_CASES = {
    "w_string": _top("w", "abc"),
    "w_h_negative": lambda d: d.update(w=-64, h=-64),
    "fl_x_list": _top("fl_x", [1, 2]),
    "fl_x_negative": _top("fl_x", -48.0),
    "ragged_transform_matrix": _frame0("transform_matrix", [[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]),
    "frame_index_string": _frame0("frame_index", "x"),
    "file_path_number": _frame0("file_path", 5),
    "singular_head_pose": _frame0("head_pose", [[0] * 4] * 4),
    "frames_not_list": _top("frames", 3),
    "expression_names_number": _top("expression_names", 7),
}


def _train(ids, *extra, steps=2):
    return ["train", "--identities", *map(str, ids), "--quiet", "--set", f"train.steps={steps}",
            *sum((["--set", s] for s in SMALL), [])] + list(extra)


def _cases(tmp: Path, world) -> dict:
    """name -> argv (built lazily: each returns the argument list for main())."""
    c, run, out = world["cast"], world["run"], tmp / "out"
    cases = {f"train_json_{k}": (lambda k=k, e=e: _train([_bad_identity(tmp, world, "transforms_train.json", e)],
                                                        "--out", str(out)))
             for k, e in TRAIN_JSON_CASES.items()}
    cases["train_json_top_list"] = lambda: _train([_write(tmp / "bad/id0", world, "transforms_train.json", "[1, 2]")], "--out", str(out))
    cases["train_json_invalid"] = lambda: _train([_write(tmp / "bad/id0", world, "transforms_train.json", "{")], "--out", str(out))
    cases["train_missing_test_json"] = lambda: _train([_drop(tmp / "bad/id0", world, "transforms_test.json")], "--out", str(out))
    for key, value in (("model.conditioning", "MM"), ("train.loss", "hubber"), ("render.background", "rnd"),
                       ("model.grid_precision", "fp8"), ("data.rays_per_batch", "0"), ("render.eval_background", "whte"),
                       ("model.cond_gate", "mouht"), ("model.far_mode", "cutof"), ("model.height_scale", "areaa"),
                       ("train.lr_grid", "-1"), ("train.expression_dropout", "2"), ("model.rank", "0"),
                       ("train.steps", "0"), ("train.steps", "-5"), ("model.expression_dims", "0"),
                       ("data.inside_fraction", "-3"), ("train.nosuchkey", "1")):
        cases[f"train_set_{key}={value}"] = lambda key=key, value=value: _train([c], "--out", str(out), "--set", f"{key}={value}")
    cases["train_missing_dir"] = lambda: _train([tmp / "nowhere"], "--out", str(out))
    cases["train_preset_invalid_yaml"] = lambda: _train([c], "--out", str(out), "--config", str(_text(tmp / "bad.yaml", "a: [1,\n")))
    cases["train_preset_missing"] = lambda: _train([c], "--out", str(out), "--config", "no_such_preset")
    cases["train_out_parent_is_file"] = lambda: _train([c], "--out", str(_text(tmp / "afile", "x") / "runs"))
    cases["train_resume_subset_of_cast"] = lambda: _train([c / "id0"], "--out", str(out), "--resume", str(run))
    cases["train_resume_missing"] = lambda: _train([c], "--out", str(out), "--resume", str(tmp / "none.ckpt"))
    cases["eval_frames_0"] = lambda: ["eval", "--checkpoint", str(run), "--frames", "0"]
    cases["eval_frames_neg"] = lambda: ["eval", "--checkpoint", str(run), "--frames", "-1"]
    cases["eval_garbage_ckpt"] = lambda: ["eval", "--checkpoint", str(_text(tmp / "g.ckpt", "garbage"))]
    cases["eval_json_parent_file"] = lambda: ["eval", "--checkpoint", str(run), "--frames", "1", "--json",
                                              str(_text(tmp / "afile", "x") / "m.json")]
    r = ["--checkpoint", str(run), "--identity", "id0"]
    cases["render_size_0"] = lambda: ["render", *r, "--size", "0", "--out", str(tmp / "r.mp4")]
    cases["render_size_neg"] = lambda: ["render", *r, "--size", "-10", "--out", str(tmp / "r.mp4")]
    cases["render_max_frames_0"] = lambda: ["render", *r, "--max-frames", "0", "--out", str(tmp / "r.mp4")]
    cases["render_unknown_identity"] = lambda: ["render", "--checkpoint", str(run), "--identity", "nobody", "--out", str(tmp / "r.mp4")]
    cases["render_bad_suffix"] = lambda: ["render", *r, "--max-frames", "1", "--out", str(tmp / "r.xyz")]
    cases["render_out_parent_file"] = lambda: ["render", *r, "--max-frames", "1", "--out", str(_text(tmp / "afile", "x") / "r.mp4")]
    cases["transfer_unknown_driver"] = lambda: ["transfer", *r, "--expressions-from", "nobody", "--out", str(tmp / "t.mp4")]
    cases["transfer_expr_file_nan"] = lambda: ["transfer", *r, "--expressions", str(_npy(tmp / "e.npy", np.full((3, 4), np.nan))),
                                               "--out", str(tmp / "t.mp4")]
    cases["transfer_expr_file_wrong_width"] = lambda: ["transfer", *r, "--expressions", str(_npy(tmp / "e.npy", np.zeros((3, 9)))),
                                                       "--out", str(tmp / "t.mp4")]
    cases["personalize_unknown"] = lambda: ["personalize", "--checkpoint", str(run), "--identity", "nobody", "--out", str(tmp / "p")]
    cases["personalize_steps_neg"] = lambda: ["personalize", "--checkpoint", str(run), "--identity", "id0", "--steps", "-3",
                                              "--out", str(tmp / "p")]
    cases["adapt_missing_data"] = lambda: ["adapt", "--checkpoint", str(run), "--data", str(tmp / "nowhere"), "--out", str(tmp / "a")]
    cases["adapt_steps_neg"] = lambda: ["adapt", "--checkpoint", str(run), "--data", str(c / "id0"), "--steps", "-1",
                                        "--out", str(tmp / "a")]
    cases["codes_garbage_ckpt"] = lambda: ["codes", "--checkpoint", str(_text(tmp / "g.ckpt", "x")), "--out", str(tmp / "c.png")]
    cases["synth_seed_neg"] = lambda: ["synth", "--identities", "1", "--frames", "2", "--size", "16", "--seed", "-1", "--out", str(tmp / "s")]
    cases["synth_size_huge"] = lambda: ["synth", "--identities", "1", "--frames", "2", "--size", "100000", "--out", str(tmp / "s")]
    cases["synth_frames_0"] = lambda: ["synth", "--identities", "1", "--frames", "0", "--size", "16", "--out", str(tmp / "s")]
    cases["synth_identities_0"] = lambda: ["synth", "--identities", "0", "--frames", "2", "--size", "16", "--out", str(tmp / "s")]
    cases["preprocess_missing_video"] = lambda: ["preprocess", str(tmp / "none.mp4"), "--out", str(tmp / "pp")]
    cases["preprocess_size_0"] = lambda: ["preprocess", str(_text(tmp / "v.mp4", "x")), "--size", "0", "--out", str(tmp / "pp")]
    cases["preview_port_huge"] = lambda: ["preview", "--checkpoint", str(run), "--port", "70000"]
    cases["preview_port_neg"] = lambda: ["preview", "--checkpoint", str(run), "--port", "-1"]
    cases["preview_size_0"] = lambda: ["preview", "--checkpoint", str(run), "--size", "0"]
    cases["preview_garbage_expressions"] = lambda: ["preview", "--checkpoint", str(run), "--expressions", str(_text(tmp / "e.txt", "a b c"))]
    cases["lipsync_missing_audio"] = lambda: ["lipsync", "--checkpoint", str(run), "--identity", "id0", "--audio", str(tmp / "none.wav"),
                                              "--out", str(tmp / "l.mp4")]
    cases["lipsync_train_no_audio"] = lambda: ["lipsync-train", "--identities", str(c), "--out", str(tmp / "l.pt")]
    cases["lipsync_train_missing_dir"] = lambda: ["lipsync-train", "--identities", str(tmp / "nowhere"), "--out", str(tmp / "l.pt")]
    return cases


def _write(d: Path, world, fname: str, text: str) -> Path:
    shutil.copytree(world["cast"] / "id0", d)
    (d / fname).write_text(text)
    return d


def _drop(d: Path, world, fname: str) -> Path:
    shutil.copytree(world["cast"] / "id0", d)
    (d / fname).unlink()
    read_identity(d)  # the cache follows the edited folder: only the command under test may write
    return d


def _text(p: Path, text: str) -> Path:
    p.write_text(text)
    return p


def _npy(p: Path, arr) -> Path:
    np.save(p, arr)
    return p


def _snapshot(*roots: Path) -> dict:
    snap = {}
    for root in roots:
        for dirpath, _, files in os.walk(root):
            for f in files:
                p = Path(dirpath) / f
                st = p.stat()
                snap[str(p)] = (st.st_size, st.st_mtime_ns)
    return snap


CASE_NAMES = sorted(_cases(Path("/x"), {"cast": Path("/c"), "run": Path("/r")}))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_bad_input(name, world, tmp_path, capsys):
    argv = _cases(tmp_path, world)[name]()
    before = _snapshot(tmp_path, world["cast"], world["run"])
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, f"exit {rc}: {err[-500:]}"
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert _snapshot(tmp_path, world["cast"], world["run"]) == before, "something was written"


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/fastminerf-pwned-by-test",))


def test_malicious_checkpoint_is_refused_without_running(tmp_path, capsys):
    marker = Path("/tmp/fastminerf-pwned-by-test")
    marker.unlink(missing_ok=True)
    p = tmp_path / "evil.ckpt"
    with open(p, "wb") as f:
        torch.save({"x": _Evil()}, f)
    for argv in (["eval", "--checkpoint", str(p)], ["train", "--identities", str(tmp_path), "--resume", str(p)]):
        assert main(argv) == 2
        assert capsys.readouterr().err.startswith("error: ")
    assert not marker.exists()


@pytest.mark.parametrize("module,argv", [
    ("mediapipe", lambda t, w: ["preprocess", str(_text(t / "v.mp4", "x")), "--out", str(t / "pp")]),
    ("viser", lambda t, w: ["preview", "--checkpoint", str(w["run"]), "--port", "0"]),
])
def test_missing_extra_is_one_line(module, argv, world, tmp_path, capsys, monkeypatch):
    args = argv(tmp_path, world)
    monkeypatch.setitem(__import__("sys").modules, module, None)  # import now raises ImportError
    before = _snapshot(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "pip install" in err, err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("damage", ["truncated_png", "nan_expression"])
def test_cache_notices_edited_frame_files(damage, world, tmp_path, capsys):
    """With cache/ present, a damaged image or expression file is still noticed (the
    fingerprint covers the per-frame files' sizes and mtimes)."""
    d = tmp_path / "c" / "id0"
    shutil.copytree(world["cast"] / "id0", d)
    if damage == "truncated_png":
        p = d / "images" / "00001.png"
        p.write_bytes(p.read_bytes()[:40])
    else:
        p = d / "expressions" / "00001.txt"
        p.write_text("nan " * 4)
    rc = main(_train([d.parent], "--out", str(tmp_path / "out")))
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and len(err.splitlines()) == 1 and str(p) in err, err
    assert not (tmp_path / "out").exists()
