"""fastminerf preprocess: ICT import, correspondence, fitting, one real clip, bad input.

Tests that need ``../shared`` (ICT-FaceKit, clips) or MediaPipe skip with the reason when
they are absent. Whole file: about a minute on 2 CPU cores.
"""
from __future__ import annotations

import importlib.util
import json
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from fastminerf.cli import main as cli_main
from fastminerf.errors import InputError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ICT_ARCHIVE = SHARED / "face_models" / "ict-facekit" / "ict-facekit.tar.xz"
LANDMARKER = SHARED / "face_models" / "face_landmarker.task"
CLIP = SHARED / "videos" / "liveportrait_d12.mp4"
HAS_MP = importlib.util.find_spec("mediapipe") is not None and importlib.util.find_spec("cv2") is not None
needs_ict = pytest.mark.skipif(not ICT_ARCHIVE.is_file(), reason=f"ICT-FaceKit archive not found at {ICT_ARCHIVE} (../shared absent)")
needs_mp = pytest.mark.skipif(not HAS_MP, reason="MediaPipe/OpenCV not installed (pip install -e .[preprocess])")
needs_clip = pytest.mark.skipif(not CLIP.is_file(), reason=f"test clip not found at {CLIP} (../shared absent)")


@pytest.fixture(scope="module")
def ict_dir(tmp_path_factory):
    """ICT-FaceKit unpacked (only FaceXModel/) into a temporary folder."""
    d = tmp_path_factory.mktemp("ict")
    with tarfile.open(ICT_ARCHIVE) as tf:
        tf.extractall(d, members=[m for m in tf.getmembers() if "FaceXModel/" in m.name], filter="data")
    return d


@pytest.fixture(scope="module")
def ict_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("ict-cache")


@pytest.fixture(scope="module")
def model(ict_dir, ict_cache):
    from fastminerf.data.preprocess.face_model_ict import load_ict

    return load_ict(ict_dir, cache=ict_cache)


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 25.0) -> Path:
    import imageio_ffmpeg

    H, W = frames[0].shape[:2]
    w = imageio_ffmpeg.write_frames(str(path), (W, H), fps=fps, macro_block_size=1, ffmpeg_log_level="error")
    w.send(None)
    for f in frames:
        w.send(np.ascontiguousarray(f))
    w.close()
    return path


# ---------------------------------------------------------------- face model

@needs_ict
def test_ict_import_shapes_names_regions(model):
    from fastminerf.data.regions import MOUTH_REGIONS, REGIONS

    V = model.n_vertices
    assert model.name == "ict-facekit"
    assert V == 16434 and model.vertices.shape == (V, 3)
    assert model.faces.shape[1] == 3 and model.faces.min() >= 0 and model.faces.max() < V
    assert model.identity_basis.shape == (100, V, 3) and model.expression_basis.shape == (53, V, 3)
    assert len(model.expression_names) == 53
    for n in ("jawOpen", "eyeBlink_L", "mouthSmile_R", "browInnerUp_L", "cheekPuff_R"):
        assert n in model.expression_names
    # metres, head space: +y up (forehead above chin), +z out of the face (nose in front)
    lm = model.vertices[model.landmarks]
    assert 0.12 < np.ptp(model.vertices[:, 1]) < 0.5
    assert lm[27, 1] > lm[8, 1] and lm[30, 2] > lm[0, 2]
    assert lm[45, 0] > 0 > lm[36, 0]  # person's left eye corner at +x
    eb = model.expression_basis[model.expression_names.index("eyeBlink_L")]
    assert model.vertices[np.argmax(np.linalg.norm(eb, axis=1)), 0] > 0  # _L = person's left
    assert set(np.unique(model.vertex_regions)) <= set(REGIONS)
    for r in MOUTH_REGIONS + (250, 210, 150):
        assert (model.vertex_regions == r).sum() > 50
    # every triangle edge is shorter than 3 cm (no stray triangles between parts)
    e = np.linalg.norm(model.vertices[model.faces] - model.vertices[np.roll(model.faces, 1, 1)], axis=-1)
    assert e.max() < 0.03


@needs_ict
def test_ict_cache_round_trip(model, ict_dir, ict_cache):
    from fastminerf.data.preprocess.face_model_ict import load_ict

    assert len(list(ict_cache.glob("ict-facekit-*.npz"))) == 1
    t = time.perf_counter()
    again = load_ict(ict_dir, cache=ict_cache)
    assert time.perf_counter() - t < 1.0
    for k in ("vertices", "faces", "identity_basis", "expression_basis", "vertex_regions", "landmarks"):
        np.testing.assert_array_equal(getattr(again, k), getattr(model, k))
    assert again.expression_names == model.expression_names


def test_face_model_missing_path(tmp_path, monkeypatch):
    from fastminerf.data.preprocess.face_model_ict import load_ict

    with pytest.raises(InputError, match="nowhere"):
        load_ict(tmp_path / "nowhere")
    with pytest.raises(InputError, match="FaceXModel"):
        load_ict(tmp_path)  # exists but is not ICT
    monkeypatch.delenv("FASTMINERF_FACE_MODEL", raising=False)
    with pytest.raises(InputError, match="--face-model"):
        load_ict(None)


# ---------------------------------------------------------------- correspondence

def test_correspondence_table_structure():
    from fastminerf.data.preprocess.correspondence import kept_table, load_table
    from fastminerf.data.preprocess.derive_correspondence import FACE_OVAL, IRIS

    v, w = load_table()
    assert v.shape == (478,) and w.shape == (478,)
    assert (w[IRIS] == 0).all() and (w[FACE_OVAL] > 0).all() and (w[FACE_OVAL] < 1).all()
    assert (v[:468] < 9409).all()  # mesh landmarks sit on the ICT face part
    assert (v[468:] >= 21451).all() and (v[468:] < 24591).all()  # irises on the eyeballs
    k, _ = kept_table()
    assert (k >= 0).all()


@needs_ict
def test_correspondence_matches_ict_landmarks(model):
    from fastminerf.data.preprocess.correspondence import ANCHORS_MP_TO_68, kept_table

    k, _ = kept_table()
    for mp_id, i68 in ANCHORS_MP_TO_68.items():
        d = np.linalg.norm(model.vertices[k[mp_id]] - model.vertices[model.landmarks[i68]])
        assert d < 0.012, (mp_id, i68, d)  # same facial feature within 12 mm
    # left/right and up/down are not swapped
    assert model.vertices[k[263], 0] > 0 > model.vertices[k[33], 0]
    assert model.vertices[k[10], 1] > model.vertices[k[1], 1] > model.vertices[k[152], 1]
    assert model.vertices[k[473], 0] > 0 > model.vertices[k[468], 0]


# ---------------------------------------------------------------- fitting

@needs_ict
def test_fit_recovers_synthetic_clip(model):
    """Project a known ICT head (identity, expressions, poses, focal) and fit it back."""
    from fastminerf.data.preprocess.correspondence import kept_table
    from fastminerf.data.preprocess.fitting import R0, axis_angle_to_matrix, fit_clip

    rng = np.random.default_rng(0)
    table, weights = kept_table()
    F, W, H, f_true = 40, 512, 512, 1100.0
    t = np.linspace(0, 1, F)[:, None]
    ident = rng.normal(0, 0.7, 100).astype(np.float32)
    expr = np.zeros((F, 53), np.float32)
    names = model.expression_names
    expr[:, names.index("jawOpen")] = 0.5 * np.sin(np.pi * t[:, 0]) ** 2
    expr[:, names.index("mouthSmile_L")] = 0.4 * t[:, 0]
    expr[:, names.index("eyeBlink_R")] = 0.6 * (t[:, 0] > 0.5)
    w = np.concatenate([0.15 * np.sin(2 * np.pi * t), 0.25 * np.sin(np.pi * t), 0.05 * t], 1).astype(np.float32)
    import torch

    R = (R0 @ axis_angle_to_matrix(torch.as_tensor(w))).numpy()
    tr = np.stack([0.01 * np.sin(3 * t[:, 0]), -0.01 + 0 * t[:, 0], 0.55 + 0.03 * t[:, 0]], 1).astype(np.float32)
    pts = model.mesh(ident, expr)[:, table]  # [F, 478, 3]
    cam = np.einsum("fij,flj->fli", R, pts) + tr[:, None]
    uv = f_true * cam[..., :2] / cam[..., 2:] + np.array([W / 2, H / 2])
    res = fit_clip(uv, np.ones(F, bool), weights, model.vertices[table], model.identity_basis[:, table],
                   model.expression_basis[:, table], (W, H), fps=25.0)
    fh = np.linalg.norm(uv[:, 10] - uv[:, 152], axis=-1)
    assert np.median(res.error_px / fh) < 0.002  # < 0.2 % of face height
    # focal, depth and identity (head size / depth profile) trade off in a monocular clip with
    # ±15° of yaw: the focal is only loosely determined
    assert abs(res.focal / f_true - 1) < 0.3
    ang = np.degrees(np.arccos(np.clip((np.trace(np.einsum("fji,fjk->fik", R, res.rotation), axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert ang.max() < 3.0  # (a focal error shows up as a small pitch/yaw bias)
    # expressions: blendshapes overlap (jawOpen vs mouthClose/lip shapes), so compare what they do:
    # the lip gap (inner lip midpoints, 3D head space) and the jawOpen curve's shape
    fitted = model.mesh(res.identity, res.expression)
    truth = model.mesh(ident, expr)
    up, lo = model.landmarks[62], model.landmarks[66]
    gap = lambda v: np.linalg.norm(v[:, up] - v[:, lo], axis=-1)
    assert np.abs(gap(fitted) - gap(truth)).max() < 0.003  # 3 mm
    jaw = names.index("jawOpen")
    assert np.corrcoef(res.expression[:, jaw], expr[:, jaw])[0, 1] > 0.9


# ---------------------------------------------------------------- bad input

def test_short_clip_and_not_a_video(tmp_path):
    from fastminerf.data.preprocess.video import probe

    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video at all\n")
    with pytest.raises(InputError) as e:
        probe(bad)
    assert str(bad) in str(e.value) and "video" in e.value.problem
    short = _write_video(tmp_path / "short.mp4", [np.full((64, 64, 3), 128, np.uint8)] * 12)  # 0.48 s
    with pytest.raises(InputError, match="at least 1 s"):
        probe(short)


def test_cli_bad_input_one_line_errors(tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello\n")
    cases = [
        ([str(tmp_path / "missing.mp4")], "missing.mp4"),
        ([str(bad), "--face-model", str(tmp_path / "no-ict")], "no-ict"),
    ]
    for extra, needle in cases:
        rc = cli_main(["preprocess", *extra, "--out", str(out)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and err.startswith("error:") and needle in err and "\n" not in err
    assert not out.exists()


@needs_ict
@needs_mp
def test_cli_not_a_video_and_no_face(tmp_path, capsys, ict_dir, ict_cache, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(ict_cache.parent))
    out = tmp_path / "out"
    bad = tmp_path / "notes.mp4"
    bad.write_text("hello\n")
    rng = np.random.default_rng(1)
    noface = _write_video(tmp_path / "wall.mp4", [rng.integers(0, 255, (96, 96, 3), np.uint8) for _ in range(30)])
    for video, needle in ((bad, "not a readable video"), (noface, "no face")):
        rc = cli_main(["preprocess", str(video), "--out", str(out), "--face-model", str(ict_dir), "--size", "64"])
        err = capsys.readouterr().err.strip().splitlines()[-1]
        assert rc == 2 and str(video) in err and needle in err
    assert not out.exists()  # nothing half-written (no temp folders either)


# ---------------------------------------------------------------- one real clip end to end

@needs_ict
@needs_mp
@needs_clip
def test_real_clip_end_to_end(tmp_path, ict_dir, ict_cache, monkeypatch):
    from fastminerf.data.layout import read_identity

    monkeypatch.setenv("XDG_CACHE_HOME", str(ict_cache.parent))
    out = tmp_path / "ids"
    args = ["preprocess", str(CLIP), "--out", str(out), "--face-model", str(ict_dir), "--size", "256",
            "--max-frames", "38", "--name", "d12"]
    if LANDMARKER.is_file():
        args += ["--landmarker", str(LANDMARKER)]
    assert cli_main(args) == 0
    d = read_identity(out / "d12")
    assert d.n_frames == 38 and d.width == d.height == 256 and d.face_model == "ict-facekit"
    assert d.is_train.sum() == 35 and len(d.expression_names) == 53
    assert d.vertex_regions is not None and d.expression_basis is not None
    assert np.allclose(d.intrinsics, d.intrinsics[0])
    a = d.image(0)[..., 3]
    assert 0.1 < (a > 127).mean() < 0.8  # head mask: neither empty nor the whole frame
    # the fitted mesh projects onto the masked head
    K = d.intrinsics[0]
    h2c = np.linalg.inv(d.cam_to_head[0])
    cam = d.vertices[0] @ h2c[:3, :3].T + h2c[:3, 3]
    uv = K[:2] * cam[:, :2] / cam[:, 2:] + K[2:]
    nose = uv[np.argmax(d.canonical[:, 2])].astype(int)
    assert a[nose[1], nose[0]] == 255
    qa = json.loads((out / "d12" / "qa" / "summary.json").read_text())
    assert qa["frames"] == 38 and qa["error_pct_median"] < 2.0
    assert (out / "d12" / "qa" / "contact_sheet.png").is_file() and (out / "d12" / "qa" / "reprojection.csv").is_file()
    assert (out / "d12" / "audio.wav").is_file()
    from fastminerf.data.layout import read_seg

    seg = read_seg(d, 0)
    assert seg is not None and seg.shape == (256, 256)
    assert {0, 250, 130, 120}.issubset(set(np.unique(seg).tolist()))
    assert (seg[a < 128] == 0).all()
    assert [p.name for p in out.iterdir()] == ["d12"]


def test_segmentation_contours():
    """Edge sets → closed contours; a synthetic face gives the expected classes."""
    from fastminerf.data.preprocess.segmentation import FaceParts, cycles, seg_mask

    loops = cycles([(0, 1), (1, 2), (2, 0), (5, 6), (6, 7), (7, 8), (8, 5)])
    assert sorted(len(l) for l in loops) == [3, 4]
    # a frontal "face": oval circle, lips ring below the centre, mouth corners 61/291
    lm = np.zeros((478, 2), np.float32)
    t = np.linspace(0, 2 * np.pi, 36, endpoint=False)
    lm[:36] = np.stack([64 + 40 * np.cos(t), 64 + 50 * np.sin(t)], 1)
    u = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    lm[36:56] = np.stack([64 + 16 * np.cos(u), 90 + 6 * np.sin(u)], 1)  # outer lip contour
    lm[56:60] = [[58, 88], [70, 88], [70, 92], [58, 92]]  # inner lip contour (open mouth)
    lm[100:103] = [[60, 60], [68, 60], [64, 70]]  # nose
    lm[61], lm[291], lm[10], lm[152] = (48, 90), (80, 90), (64, 14), (64, 114)
    parts = FaceParts(oval=np.arange(36), lips_outer=np.arange(36, 56), lips_inner=np.arange(56, 60),
                      eyes=[], brows=[], nose=np.arange(100, 103))
    seg = seg_mask(np.full((128, 128), 255, np.uint8), lm, parts)
    assert seg[86, 64] == 130 and seg[94, 64] == 120 and seg[90, 64] == 140  # upper lip, lower lip, mouth
    assert seg[63, 64] == 150
    assert seg[64, 30] == 250 and seg[127, 64] == 110 and seg[2, 2] == 80


def test_cli_never_imports_mediapipe():
    """Importing fastminerf and building the CLI (all subcommands) loads no MediaPipe/OpenCV."""
    import subprocess
    import sys

    code = ("import sys, fastminerf.cli as c, fastminerf.data.preprocess.pipeline; c.build_parser(); "
            "print(sorted(m for m in ('mediapipe', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
