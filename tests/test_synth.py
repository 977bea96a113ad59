"""The procedural synthetic cast: head model sanity, determinism, ground truth, errors.

Tiny casts (48² images, a few frames) keep the whole file fast on two CPU cores.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from fastminerf.cli import main as cli_main
from fastminerf.data.identity import read_rgba
from fastminerf.data.layout import read_identity, read_seg
from fastminerf.data.regions import REGIONS
from fastminerf.data.synth import build_head_model, build_synth_head
from fastminerf.data.synth.appearance import Light
from fastminerf.data.synth.cast import make_member, render_performance, synthesize_cast, transfer_drivers
from fastminerf.data.synth.render import Camera, default_camera, rasterize, render_frame, to_camera
from fastminerf.errors import InputError

REQUIRED_EXPRESSIONS = ["jawOpen", "mouthSmile_L", "mouthSmile_R", "mouthPucker", "mouthFunnel", "mouthPress",
                        "browInnerUp", "browDown", "eyeBlink_L", "eyeBlink_R", "cheekPuff"]
N_ID, N_FRAMES, SIZE = 2, 5, 48


@pytest.fixture(scope="module")
def head():
    return build_synth_head()


@pytest.fixture(scope="module")
def cast(tmp_path_factory):
    out = tmp_path_factory.mktemp("cast") / "synth"
    synthesize_cast(out, N_ID, N_FRAMES, SIZE, seed=3, workers=1, progress=False)
    return out


def _digest(root: Path) -> dict[str, str]:
    """sha1 of every file but cache/meta.json (it records the frame files' mtimes: local by nature)."""
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and not (p.name == "meta.json" and p.parent.name == "cache")}


def _expr(model, **coeffs) -> np.ndarray:
    e = np.zeros(model.n_expressions, np.float32)
    for k, v in coeffs.items():
        e[model.expression_names.index(k)] = v
    return e


def _regions(head, vertices, size=128):
    """Region map of a frontal render of the mouth/eye area (close-up camera)."""
    cam = default_camera(size)
    cam = Camera(size, size, cam.fx * 2.5, cam.fy * 2.5, size / 2, size / 2 - 0.01 * cam.fy * 2.5 / 0.65, cam.c2w)
    member = make_member(head, 0, 0, 2)
    _, seg = render_frame(head, member.appearance, vertices, np.eye(4), cam, Light())
    return seg


# ---------------------------------------------------------------------------- head model


def test_head_model_structure(head):
    m = build_head_model()
    assert m is head.model and m.name == "fastminerf-synth-head-v1"
    assert 2000 <= m.n_vertices <= 6000
    assert m.n_identities >= 10 and len(set(m.identity_names)) == m.n_identities
    assert m.n_expressions >= 12 and set(REQUIRED_EXPRESSIONS) <= set(m.expression_names)
    assert m.faces.min() >= 0 and m.faces.max() < m.n_vertices
    assert np.isfinite(m.identity_basis).all() and np.isfinite(m.expression_basis).all()
    # every region of the face-parsing convention is present on the mesh
    assert set(np.unique(m.vertex_regions)) == set(REGIONS) - {0}
    # identity modes are smooth: no vertex moves much more than the mode's typical size
    assert np.abs(m.identity_basis).max() < 0.03
    # linear model, one topology
    rng = np.random.default_rng(0)
    v = m.mesh(rng.normal(size=m.n_identities), rng.uniform(0, 1, m.n_expressions))
    assert v.shape == (m.n_vertices, 3) and v.dtype == np.float32


def test_neutral_mouth_is_closed_and_jaw_opens_it(head):
    m = head.model
    shape = np.random.default_rng(1).normal(size=m.n_identities)
    closed = _regions(head, m.mesh(shape))
    opened = _regions(head, m.mesh(shape, _expr(m, jawOpen=0.7)))
    assert (closed == 140).sum() == 0, "mouth interior visible with the mouth closed"
    assert (opened == 140).sum() > 20, "jawOpen does not reveal the mouth interior"
    assert (closed == 130).sum() > 0 and (closed == 120).sum() > 0  # both lips visible


def test_blink_closes_the_eyes_exactly(head):
    m = head.model
    shape = np.random.default_rng(2).normal(size=m.n_identities)
    busy = dict(browInnerUp=0.8, browDown=0.3, mouthSmile_L=1.0, cheekPuff=0.5)  # other shapes active too
    open_ = _regions(head, m.mesh(shape, _expr(m, **busy)))
    shut = _regions(head, m.mesh(shape, _expr(m, eyeBlink_L=1.0, eyeBlink_R=1.0, **busy)))
    one = _regions(head, m.mesh(shape, _expr(m, eyeBlink_L=1.0, **busy)))
    assert (open_ == 210).sum() > 50
    assert (shut == 210).sum() == 0, "eye pixels left after a full blink"
    assert 0 < (one == 210).sum() < (open_ == 210).sum()


def test_rasterizer_matches_ray_casting(head):
    """Each covered pixel shows the nearest triangle its pixel-centre ray hits (brute force check)."""
    m = head.model
    size = 24
    cam = default_camera(size)
    v_cam = to_camera(m.mesh(None, _expr(m, jawOpen=0.5)), np.eye(4), cam.c2w)
    frags = rasterize(v_cam, m.faces, cam)
    d = cam.pixel_rays().reshape(-1, 1, 3)  # [R, 1, 3] rays from the camera centre
    a, b, c = (v_cam[m.faces[:, k]][None] for k in range(3))  # [1, T, 3]
    e1, e2 = b - a, c - a
    depth = np.full(d.shape[0], np.inf)
    for rows in np.array_split(np.arange(d.shape[0]), 8):  # Möller–Trumbore against every triangle
        p = np.cross(d[rows], e2)
        det = (e1 * p).sum(-1)
        inv = 1.0 / np.where(np.abs(det) < 1e-15, np.nan, det)
        u = (-a * p).sum(-1) * inv
        q = np.cross(-a, e1)
        v = (d[rows] * q).sum(-1) * inv
        t = (e2 * q).sum(-1) * inv
        ok = (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (t > 0)
        depth[rows] = np.where(ok, t, np.inf).min(1)
    hit = np.isfinite(depth)
    assert (hit == frags.mask.ravel()).mean() > 0.99  # silhouette pixels may differ by rounding
    both = hit & frags.mask.ravel()
    assert both.sum() > 100 and np.allclose(frags.depth.ravel()[both], depth[both], atol=1e-6)


# ---------------------------------------------------------------------------- the cast


def test_cast_layout_and_read_back(cast, head):
    names = sorted(p.name for p in cast.iterdir())
    assert names == ["cast.json", "contact_sheet.png", "id000", "id001"]
    meta = json.loads((cast / "cast.json").read_text())
    assert meta["n_identities"] == N_ID and [i["name"] for i in meta["identities"]] == ["id000", "id001"]
    d = read_identity(cast / "id000")
    assert d.n_frames == N_FRAMES and d.is_train.sum() == 4 and d.face_model == "fastminerf-synth-head-v1"
    assert d.images.shape == (N_FRAMES, SIZE, SIZE, 4)
    assert d.expression_basis.shape == (head.model.n_expressions, head.model.n_vertices, 3)
    assert d.vertex_regions.shape == (head.model.n_vertices,)
    seg = read_seg(d, 0)
    alpha = d.image(0)[..., 3]
    assert ((seg > 0) == (alpha > 0)).all() and set(np.unique(seg)) <= set(REGIONS)
    shape = np.array(list(meta["identities"][0]["identity_coefficients"].values()), np.float32)
    assert np.allclose(d.canonical, head.model.mesh(shape), atol=2e-6)


def test_same_seed_same_bytes_any_worker_count(cast, tmp_path):
    again = tmp_path / "again"
    synthesize_cast(again, N_ID, N_FRAMES, SIZE, seed=3, workers=2, progress=False)
    assert _digest(again) == _digest(cast)


def test_different_seed_differs(cast, tmp_path):
    other = tmp_path / "other"
    synthesize_cast(other, N_ID, N_FRAMES, SIZE, seed=4, workers=1, progress=False)
    a, b = _digest(cast), _digest(other)
    images = [k for k in a if k.startswith("id000/images/")]
    assert all(a[k] != b[k] for k in images)
    assert a["cast.json"] != b["cast.json"]


def test_transfer_ground_truth(cast, head):
    """id000/transfer/id001: id000's shape and look, id001's held-out expressions, poses and camera."""
    meta = json.loads((cast / "cast.json").read_text())
    shape_a = np.array(list(meta["identities"][0]["identity_coefficients"].values()), np.float32)
    b = read_identity(cast / "id001")
    test_b = b.split_indices("test")
    t = read_identity(cast / "id000" / "transfer" / "id001")
    top = json.loads((cast / "id000" / "transfer" / "id001" / "transforms_test.json").read_text())
    assert top["transfer"] == {"identity": "id000", "driver": "id001", "driver_frames": test_b.tolist()}
    assert t.n_frames == test_b.size and not t.is_train.any()
    assert np.array_equal(t.expressions, b.expressions[test_b])
    assert np.allclose(t.cam_to_head, b.cam_to_head[test_b], atol=1e-6)
    expected = head.model.mesh(shape_a, np.asarray(b.expressions[test_b]))
    assert np.allclose(t.vertices, expected, atol=2e-6)
    assert np.allclose(t.canonical, head.model.mesh(shape_a), atol=2e-6)


def test_own_performance_through_transfer_path_equals_training_frames(cast, head):
    actor = make_member(head, 3, 0, N_FRAMES)
    d = read_identity(cast / "id000")
    train = d.split_indices("train")
    for i, rgba, seg, verts, e, _pose in render_performance(head, actor, actor, train, default_camera(SIZE)):
        assert np.array_equal(rgba, read_rgba(d.image_paths[i]))
        assert np.array_equal(seg, read_seg(d, i))
        assert np.array_equal(verts, d.vertices[i]) and np.array_equal(e, d.expressions[i])


def test_identities_look_different(cast):
    a, b = read_identity(cast / "id000"), read_identity(cast / "id001")
    both = (a.image(0)[..., 3] > 0) & (b.image(0)[..., 3] > 0)
    diff = np.abs(a.image(0)[..., :3].astype(int) - b.image(0)[..., :3].astype(int))[both].mean()
    assert diff > 10


def test_transfer_driver_choice():
    assert transfer_drivers(0, 1) == []
    assert transfer_drivers(1, 4) == [2, 3, 0]
    assert transfer_drivers(4, 6) == [5, 0, 1]
    assert transfer_drivers(4, 6, k=1) == [5] and transfer_drivers(2, 3, k=0) == []


def test_lighting_drift_changes_light_not_geometry(head):
    still = make_member(head, 7, 0, 12)
    drift = make_member(head, 7, 0, 12, lighting_drift=1.0)
    assert np.array_equal(still.motion.expressions, drift.motion.expressions)
    assert np.array_equal(still.motion.head_pose, drift.motion.head_pose)
    cam = default_camera(40)
    (_, a, sa, *_), = render_performance(head, still, still, [11], cam)
    (_, b, sb, *_), = render_performance(head, drift, drift, [11], cam)
    assert np.array_equal(sa, sb) and np.array_equal(a[..., 3], b[..., 3])
    assert np.abs(a[..., :3].astype(int) - b[..., :3].astype(int)).max() > 5


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, words", [
    (dict(n_identities=0), "--identities"),
    (dict(n_frames=1), "--frames"),
    (dict(size=16), "--size"),
    (dict(transfer_drivers=5), "--transfer-drivers"),
    (dict(lighting_drift=2.0), "--lighting-drift"),
])
def test_bad_arguments(tmp_path, kwargs, words):
    args = dict(n_identities=2, n_frames=4, size=48) | kwargs
    with pytest.raises(InputError, match=words):
        synthesize_cast(tmp_path / "c", args.pop("n_identities"), args.pop("n_frames"), args.pop("size"),
                        workers=1, progress=False, **args)
    assert list(tmp_path.iterdir()) == []


def test_existing_folder_and_cli_errors(tmp_path, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        synthesize_cast(out, 1, 2, 48, workers=1, progress=False)
    with pytest.raises(InputError, match="not a synthetic cast"):
        synthesize_cast(out, 1, 2, 48, overwrite=True, workers=1, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and (out / "notes.txt").read_text() == "mine"
    assert cli_main(["synth", "--identities", "0", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "--identities" in err and len(err.splitlines()) == 1
    assert cli_main(["synth", "--frames", "3", "--identities", "1", "--size", "48", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_cli_writes_a_cast(tmp_path, capsys):
    out = tmp_path / "c"
    argv = ["synth", "--identities", "1", "--frames", "2", "--size", "40", "--out", str(out), "--no-obj",
            "--workers", "1", "--quiet", "--seed", "5"]
    assert cli_main(argv) == 0
    assert "wrote 1 identities" in capsys.readouterr().out
    assert not (out / "id000" / "meshes").exists() and read_identity(out / "id000").n_frames == 2
    first = _digest(out)
    assert cli_main(argv + ["--overwrite"]) == 0
    assert _digest(out) == first
