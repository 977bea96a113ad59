"""The virtual mouth cavity (fastminerf.model.cavity): open-mouth points get their own canonical home."""
import numpy as np
import torch

from fastminerf.config import Config, load_config
from fastminerf.model.avatar import Avatar
from fastminerf.model.cast_info import CastInfo
from fastminerf.model.cavity import MouthCavity, boundary_loops, find_mouth_loop
from fastminerf.model.frames import FrameBatch
from fastminerf.ops.embed import MeshSet, embed_points_torch

FAR = 0.02  # far-from-mesh band of this 10 cm test head


def _slit_head():
    """A y-squashed icosphere (r 0.1) with a horizontal slit cut in front (the lip seam):
    canonical [V, 3], faces [T, 3], and a frame with the mouth opened 1.5 cm (lips moved
    apart vertically around the slit)."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=4, radius=0.1)
    v, f = m.vertices.astype(np.float32), m.faces.astype(np.int64)
    c = v[f].mean(1)
    f = f[~((c[:, 2] > 0.094) & (np.abs(c[:, 1]) < 0.006))]
    used = np.unique(f)
    remap = np.full(len(v), -1)
    remap[used] = np.arange(used.size)
    v, f = v[used], remap[f]
    front = np.clip((v[:, 2] - 0.04) / 0.05, 0, 1) * np.exp(-np.abs(v[:, 1]) / 0.03)
    opened = v + np.stack([np.zeros_like(front), np.sign(v[:, 1]) * 0.0075 * front, np.zeros_like(front)], -1)
    return torch.from_numpy(v), torch.from_numpy(f), torch.from_numpy(opened.astype(np.float32))


def _carry(points, frame_v, canonical, faces):
    ms = MeshSet(frame_v[None], faces, search="brute")
    slots = torch.zeros(points.shape[0], dtype=torch.long)
    face, dist = ms.nearest(points, slots)
    x_c, _, _ = embed_points_torch(points, None, slots, face, frame_v[None], canonical, faces)
    return x_c, face, dist


def test_the_flat_lip_loop_is_found_and_a_closed_mesh_has_none():
    v, f, _ = _slit_head()
    loops = boundary_loops(f.numpy())
    assert len(loops) == 1
    loop = find_mouth_loop(v.numpy(), f.numpy())
    assert loop is not None and np.ptp(v.numpy()[loop], 0)[1] < 0.5 * np.ptp(v.numpy()[loop], 0)[0]
    import trimesh

    s = trimesh.creation.icosphere(subdivisions=2, radius=0.1)
    assert find_mouth_loop(s.vertices, s.faces) is None


def test_open_mouth_points_get_a_cavity_home_away_from_the_lips():
    v, f, opened = _slit_head()
    cav = MouthCavity(v, f, find_mouth_loop(v.numpy(), f.numpy()), depth=1.2)
    loop_c = opened[cav.loop].mean(0)
    # points inside the open mouth, 0.5 .. 4 cm behind the lip opening
    pts = torch.stack([loop_c + torch.tensor([0.0, 0.0, -dz]) for dz in (0.005, 0.01, 0.02, 0.03, 0.04)])
    _, _, dist0 = _carry(pts, opened, v, f)
    ext = cav.extend(opened[None])[0]
    x_c, face, dist = _carry(pts, ext, cav.canonical_all, cav.faces_all)
    assert (dist0[2:] > FAR).all(), "without a cavity the deep interior is beyond the far band (cut)"
    assert (dist < FAR).all() and (face[1:] >= f.shape[0]).all(), "with it every point is near a cavity triangle"
    lips = v[cav.loop]
    to_lips = torch.cdist(x_c, lips).amin(1)
    assert (to_lips[1:] > 0.006).all(), "canonical homes are away from the lip seam"
    assert (x_c[1:, 2] < lips[:, 2].mean() - 0.005).all(), "and behind it, deeper points deeper"
    assert (x_c[2:, 2].diff() < 0).all()
    # no degenerate cavity triangle, even with the frame's lips closed
    for mesh in (cav.canonical_all, ext, cav.extend(v[None])[0]):
        tri = mesh[cav.faces_all[f.shape[0]:]]
        area = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1).norm(dim=-1)
        assert area.min() > 1e-7


def _avatar(mouth_cavity: bool):
    v, f, opened = _slit_head()
    E = 3
    lo, hi = v.min(0).values.numpy(), v.max(0).values.numpy()
    box = np.concatenate([lo - 0.02, hi + 0.02]).astype(np.float32)
    info = CastInfo(names=["a"], frames_per_identity=[2], identity_roots=["a"], expression_names=["e"] * E,
                    canonical=v.numpy(), faces=f.numpy(), face_regions=None, head_aabb=box, canonical_aabb=box,
                    expr_mean=np.zeros(E, np.float32), expr_std=np.ones(E, np.float32))
    cfg = load_config("tiny_cpu", [f"model.mouth_cavity={str(mouth_cavity).lower()}", "model.far_distance=0.06"])
    torch.manual_seed(0)
    return Avatar(cfg.model, cfg.render, info), opened


def test_cavity_samples_train_the_field_and_old_checkpoints_load():
    avatar, opened = _avatar(True)
    assert avatar.cavity is not None
    frames = FrameBatch(vertices=opened[None], expression=torch.zeros(1, 3), identity=torch.zeros(1, dtype=torch.long),
                        latent=torch.zeros(1, avatar.latent_dim))
    avatar.init_occupancy(opened[None])
    c = opened[avatar.cavity.loop].mean(0)
    origins = (c + torch.tensor([0.0, 0.0, 0.4])).expand(64, 3).clone()
    origins[:, 0] += torch.linspace(-0.01, 0.01, 64)
    dirs = torch.tensor([0.0, 0.0, -1.0]).expand(64, 3)
    slots = torch.zeros(64, dtype=torch.long)
    x = origins + dirs * 0.43  # 3 cm behind the opening
    keep, _, _, face = avatar.embed(x, None, slots, frames, avatar.mesh_set(frames))
    assert keep.all() and (face >= avatar.faces.shape[0]).all()
    out = avatar.render_rays(origins, dirs, slots, frames, torch.ones(3))
    out["rgb"].sum().backward()
    assert avatar.field.grid.table.grad.abs().sum() > 0
    # checkpoints: no new state; a run without the field in its config builds no cavity
    old, _ = _avatar(False)
    assert set(old.state_dict()) == set(avatar.state_dict())
    avatar.load_state_dict(old.state_dict())
    d = Config().to_dict()
    del d["model"]["mouth_cavity"], d["model"]["mouth_cavity_depth"]
    assert Config.from_dict(d).model.mouth_cavity is False
