"""The dataset layer: our layout round trip, INSTA reader, cast checks, ray batcher."""
import json

import numpy as np
import pytest
import torch

from fastminerf.data.cast import load_cast
from fastminerf.data.layout import read_identity
from fastminerf.data.rays import RayBatcher, image_rays
from fastminerf.errors import InputError

from fixtures import camera, make_identity, make_insta_identity


def test_layout_round_trip_and_cache(tmp_path):
    d = make_identity(tmp_path, "a", n_frames=10)
    data = read_identity(d)
    assert data.n_frames == 10 and data.is_train.sum() == 9  # last 10 % held out
    assert data.images.shape == (10, 32, 32, 4) and data.images.dtype == np.uint8
    np.testing.assert_allclose(data.cam_to_head[0], camera(), atol=1e-6)
    # per-frame files and cache agree; a stale cache is rebuilt from the files
    (d / "cache" / "meta.json").write_text(json.dumps({"fingerprint": "stale"}))
    again = read_identity(d)
    np.testing.assert_allclose(np.asarray(again.vertices), np.asarray(data.vertices), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(again.images), np.asarray(data.images))


def test_missing_frame_file_is_named(tmp_path):
    d = make_identity(tmp_path, "a")
    (d / "images" / "00003.png").unlink()
    with pytest.raises(InputError, match="00003.png.*not found"):
        read_identity(d)


def test_nan_mesh_is_named(tmp_path):
    d = make_identity(tmp_path, "a")
    (d / "cache" / "meta.json").unlink()
    p = d / "meshes" / "00002.obj"
    lines = p.read_text().splitlines()
    lines[0] = "v nan 0 0"
    p.write_text("\n".join(lines))
    with pytest.raises(InputError, match="00002.obj.*NaN"):
        read_identity(d)


def test_topology_and_expression_mismatch(tmp_path):
    make_identity(tmp_path / "c1", "a", subdivisions=2)
    make_identity(tmp_path / "c1", "b", subdivisions=1)
    with pytest.raises(InputError, match="topology differs"):
        load_cast([tmp_path / "c1"])
    make_identity(tmp_path / "c2", "a", n_exp=4)
    make_identity(tmp_path / "c2", "b", n_exp=5)
    with pytest.raises(InputError, match="expression coefficients"):
        load_cast([tmp_path / "c2/a", tmp_path / "c2/b"])


def test_bad_paths(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_cast([tmp_path / "nope"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty or not an identity"):
        load_cast([tmp_path / "empty"])


def test_insta_layout_camera_convention(tmp_path):
    """A vertex projected with OpenCV intrinsics/extrinsics lands on the pixel whose ray hits it."""
    theta = 0.3
    c2w = np.eye(4)
    c2w[:3, :3] = np.array([[np.cos(theta), 0, np.sin(theta)], [0, 1, 0], [-np.sin(theta), 0, np.cos(theta)]]) @ np.diag([1, -1, -1])
    c2w[:3, 3] = c2w[:3, :3] @ np.array([0, 0, -0.5])  # camera 0.5 in front of the origin, looking at it
    d = make_insta_identity(tmp_path, c2w=c2w)
    cast = load_cast([d], expression_dims=16)
    assert cast.n_expressions == 16 and cast.is_train.sum() == 4
    data = cast.identities[0]
    assert data.source == "insta" and data.images[0, 16, 16, 3] == 255
    o, dirs = image_rays(torch.from_numpy(cast.cam_to_head[0]), torch.from_numpy(cast.intrinsics[0]), 32, 32)
    # the centre pixel's ray passes through the origin (the camera looks at it)
    centre = 16 * 32 + 16
    t = -(o[centre] * dirs[centre]).sum()
    closest = o[centre] + t * dirs[centre]
    assert closest.norm() < 0.5 * 0.5 / 48 * 1.5  # within ~a pixel footprint
    # a point to the camera's right (OpenCV +x) projects to larger column indices
    right = torch.from_numpy(c2w[:3, 0]).float() * 0.05
    cols = (dirs @ (right / right.norm())).reshape(32, 32)
    assert cols[:, 24].mean() > 0 > cols[:, 8].mean()


def test_batcher_inside_fraction_and_identity_coverage(tmp_path):
    for k in range(3):
        make_identity(tmp_path, f"id{k}", n_frames=8, colour=(50 * k, 100, 100))
    cast = load_cast([tmp_path])
    b = RayBatcher(cast, rays_per_batch=8192, frames_per_batch=32, seed=1)
    inside, counts = [], torch.zeros(3)
    for _ in range(5):
        batch = b.sample()
        box = b.boxes[torch.searchsorted(b.frame_table, batch.frame)]
        x, y = batch.xy[:, 0], batch.xy[:, 1]
        inside.append(((x >= box[:, 0]) & (x < box[:, 2]) & (y >= box[:, 1]) & (y < box[:, 3])).float().mean())
        counts += torch.bincount(batch.identity, minlength=3)
        assert cast.is_train[batch.frame.numpy()].all()
    assert abs(float(torch.stack(inside).mean()) - 0.95) < 0.01
    share = counts / counts.sum()
    assert (share - 1 / 3).abs().max() < 0.08
    # targets are the image pixels of the drawn frames
    img = cast.image(int(batch.frame[0]))
    np.testing.assert_allclose(batch.rgba[0].numpy() * 255, img[batch.xy[0, 1], batch.xy[0, 0]], atol=1e-3)
    # same seed, same rays
    a1, a2 = RayBatcher(cast, 256, seed=3).sample(), RayBatcher(cast, 256, seed=3).sample()
    assert torch.equal(a1.directions, a2.directions)
