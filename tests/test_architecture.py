"""The package's shape: typed modes, one-way layers, data-only checkpoints that still load
from 0.1.0, and a wheel that installs and trains without the source tree."""
import os
import shutil
import subprocess
import sys
import sysconfig
import typing
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from fastminerf.cli import main
from fastminerf.config import ConditioningName, Config, load_config, load_variant, variant_names
from fastminerf.errors import InputError
from fastminerf.model.checkpoint import load_checkpoint
from fastminerf.model.conditioning import CONDITIONINGS
from fastminerf.model.frames import FrameBatch
from fastminerf.model.loading import avatar_from_state
from fastminerf.render.views import ViewCamera, background_color, expression_mesh, look_at, render_image

from fixtures import make_identity

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
LINT_IMPORTS = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")


@pytest.mark.parametrize("override, field_name", [("model.cond_gate=mouht", "model.cond_gate"),
                                                  ("model.far_mode=cutof", "model.far_mode"),
                                                  ("model.height_scale=areaa", "model.height_scale"),
                                                  ("model.conditioning=MM", "model.conditioning"),
                                                  ("train.loss=hubber", "train.loss"),
                                                  ("render.background=rnd", "render.background"),
                                                  ("model.grid_precision=fp8", "model.grid_precision"),
                                                  ("render.eval_background=whte", "render.eval_background")])
def test_a_mode_typo_is_one_line_naming_the_field_and_its_choices(override, field_name):
    with pytest.raises(InputError, match=rf"'{field_name}' must be one of .*\(got"):
        load_config("tiny_cpu", [override])


def test_cli_rejects_a_mode_typo_before_doing_anything(tmp_path, capsys):
    assert main(["train", "--identities", str(tmp_path), "--set", "model.cond_gate=mouht", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.cond_gate" in err[0] and "none, mouth" in err[0]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("override", ["train.lr_grid=-1", "train.expression_dropout=2", "data.inside_fraction=-3",
                                      "model.rank=0", "train.steps=0", "train.steps=-5", "data.rays_per_batch=0"])
def test_out_of_range_numbers_are_refused(override):
    with pytest.raises(InputError, match="must be"):
        load_config("tiny_cpu", [override])


def test_every_mode_field_is_typed_as_its_choices():
    """A ``str`` field other than names would accept any typo: every mode is a Literal."""
    def walk(cls, prefix=""):
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            tp = hints[f.name]
            if hasattr(tp, "__dataclass_fields__"):
                yield from walk(tp, prefix + f.name + ".")
            else:
                yield prefix + f.name, tp

    plain_str = [k for k, tp in walk(Config) if tp is str]
    assert plain_str == ["name", "description"]


def test_conditioning_names_are_registered_once():
    assert set(typing.get_args(ConditioningName)) == set(CONDITIONINGS)
    for name in variant_names():  # every ablation preset loads and names a registered module
        cfg = load_variant(name)
        assert cfg.model.conditioning in CONDITIONINGS and cfg.description
    for name, cls in CONDITIONINGS.items():
        assert cls.name == name and cls.__doc__


def test_a_checkpoint_of_0_1_0_loads_and_renders_as_before():
    """tests/data/legacy-0.1.0.ckpt was written by fastminerf 0.1.0 (tests/data/make_legacy.py);
    it loads data-only and renders the same view as 0.1.0 did."""
    state = load_checkpoint(DATA / "legacy-0.1.0.ckpt")
    avatar, cfg = avatar_from_state(state, device="cpu", backend="torch")
    ref = np.load(DATA / "legacy-0.1.0-render.npz")
    e = torch.tensor([0.1, -0.05, 0.0, 0.02])
    cam = ViewCamera(torch.from_numpy(look_at((0, 0, 0.5), (0, 0, 0), (0, -1, 0))), torch.tensor([24.0, 24.0, 8.0, 8.0]), 16, 16)
    fb = FrameBatch(vertices=torch.from_numpy(expression_mesh(avatar.info, 1, e))[None], expression=e[None],
                    identity=torch.tensor([1]), latent=avatar.identity_latent(1)[None])
    out = render_image(avatar, fb, cam.cam_to_head, cam.intrinsics, 16, 16, background_color("white"))
    assert ref["opacity"].max() > 0.1
    for key in ("rgb", "opacity", "depth"):
        np.testing.assert_allclose(out[key].numpy(), ref[key], atol=2e-5)


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path, capsys):
    marker = tmp_path / "ran"
    state = torch.load(DATA / "legacy-0.1.0.ckpt", weights_only=False)
    state["payload"] = _Payload(marker)
    torch.save(state, tmp_path / "evil.ckpt")
    for argv in (["eval", "--checkpoint", str(tmp_path / "evil.ckpt")],
                 ["train", "--identities", str(tmp_path), "--resume", str(tmp_path / "evil.ckpt")]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "refused" in err[0] and "evil.ckpt" in err[0]
    assert not marker.exists()


def _lint_imports(config: Path, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    r = _lint_imports(ROOT / "pyproject.toml", ROOT, ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize("module, line", [
    ("data/cast.py", "from ..train import trainer  # a layer imports a later one\n"),
    ("data/synth/contact.py", "from . import cast  # a cycle between siblings\n"),
])
def test_the_import_contracts_catch_an_injected_violation(tmp_path, module, line):
    shutil.copytree(ROOT / "fastminerf", tmp_path / "fastminerf", ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "fastminerf" / module
    text = target.read_text()
    cut = text.index("\nfrom ") + 1  # after the docstring and the __future__ import
    target.write_text(text[:cut] + line + text[cut:])
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    r = _lint_imports(tmp_path / "pyproject.toml", tmp_path, tmp_path)
    assert r.returncode != 0 and "BROKEN" in r.stdout, r.stdout + r.stderr


def test_the_wheel_installs_and_trains_without_the_source_tree(tmp_path):
    """pip wheel → a fresh venv (dependencies from this environment, fastminerf only from the
    wheel) → ``fastminerf train --config tiny_cpu`` from another folder."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, timeout=600, capture_output=True)
    wheel = next(wheels.glob("fastminerf-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "deps.pth").write_text("\n".join(sorted(deps)) + "\n")  # path lines only: no editable finder runs
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q", str(wheel)],
                   check=True, timeout=300, capture_output=True)
    work = tmp_path / "elsewhere"
    make_identity(work / "cast", "a", n_frames=4, size=16, subdivisions=1)
    make_identity(work / "cast", "b", n_frames=4, size=16, subdivisions=1, seed=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([py, "-c", "import fastminerf, fastminerf.config as c; print(fastminerf.__file__); print(c.CONFIG_DIR)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(str(venv) in w for w in where), where  # the package and its presets come from the wheel
    assert (Path(where[1]) / "variants" / "M.yaml").is_file()
    r = subprocess.run([venv / "bin" / "fastminerf", "train", "--identities", "cast", "--config", "tiny_cpu", "--quiet",
                        "--set", "train.steps=2", "--set", "data.rays_per_batch=128", "--set", "render.occupancy_resolution=16",
                        "--set", "train.threads=1", "--out", "runs"], cwd=work, env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    assert list((work / "runs").rglob("step-000000002.ckpt"))


def test_modules_stay_small():
    """One module per concept: none of fastminerf/ grows past ~400 lines."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "fastminerf").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 420}
    assert not long, long
