"""The virtual mouth cavity (fastminerf.model.cavity): open-mouth points get their own canonical home."""
import numpy as np
import pytest
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


def _avatar(mouth_cavity: bool, *extra: str):
    v, f, opened = _slit_head()
    E = 3
    lo, hi = v.min(0).values.numpy(), v.max(0).values.numpy()
    box = np.concatenate([lo - 0.02, hi + 0.02]).astype(np.float32)
    info = CastInfo(names=["a"], frames_per_identity=[2], identity_roots=["a"], expression_names=["e"] * E,
                    canonical=v.numpy(), faces=f.numpy(), face_regions=None, head_aabb=box, canonical_aabb=box,
                    expr_mean=np.zeros(E, np.float32), expr_std=np.ones(E, np.float32))
    cfg = load_config("tiny_cpu", [f"model.mouth_cavity={str(mouth_cavity).lower()}", "model.far_distance=0.06", *extra])
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


def test_cavity_levels_keep_cavity_samples_off_the_fine_levels():
    avatar, opened = _avatar(True, "model.cavity_levels=3")
    F = avatar.field.grid.spec.n_features
    frames = FrameBatch(vertices=opened[None], expression=torch.zeros(1, 3), identity=torch.zeros(1, dtype=torch.long),
                        latent=torch.zeros(1, avatar.latent_dim))
    c = opened[avatar.cavity.loop].mean(0)
    pts = torch.stack([c + torch.tensor([0.0, 0.0, -0.03]), torch.tensor([0.0, 0.099, 0.0])])  # cavity, crown
    slots = torch.zeros(2, dtype=torch.long)
    keep, x_c, d_c, face = avatar.embed(pts, None, slots, frames, avatar.mesh_set(frames))
    assert keep.all() and face[0] >= avatar.faces.shape[0] > face[1]
    scale = avatar.cavity_levels.feature_scale(face >= avatar.faces.shape[0])
    assert scale[0, : 3 * F].eq(1).all() and scale[0, 3 * F :].eq(0).all() and scale[1].eq(1).all()
    cond = avatar.condition(frames)
    sigma, _ = avatar._field(x_c, d_c, slots, face, cond)[:2]
    sigma.sum().backward()
    fine = int(avatar.field.grid.spec.layout["offset"][3])  # table rows of levels ≥ 3
    assert avatar.field.grid.table.grad[fine:].abs().sum() > 0  # the crown sample reads them
    # the cavity sample alone sends no gradient to the fine levels (its features there are 0)
    avatar.zero_grad()
    sigma0, _ = avatar._field(x_c[:1], d_c, slots[:1], face[:1], avatar.condition(frames))[:2]
    sigma0.sum().backward()
    g = avatar.field.grid.table.grad
    assert g[:fine].abs().sum() > 0 and g[fine:].abs().sum() == 0
    assert set(avatar.state_dict()) == set(_avatar(True)[0].state_dict())  # no new state in checkpoints


@pytest.mark.parametrize("gate", ["none", "mouth"])
def test_dropout_keeps_the_mouths_own_expression(gate):
    """With train.dropout_keeps_mouth, cavity samples read M(e_own, i) while the rest of the
    face reads M(e_dropped, i) — density and colour, with and without INSTA's gating row."""
    avatar, opened = _avatar(True, f"model.cond_gate={gate}")
    torch.manual_seed(1)
    for p in avatar.parameters():  # make the conditioning matter
        p.data.normal_(0, 0.3)
    own, dropped = torch.tensor([[1.5, -2.0, 0.7]]), torch.zeros(1, 3)
    c = opened[avatar.cavity.loop].mean(0)
    pts = torch.stack([c + torch.tensor([0.0, 0.0, -0.03]), torch.tensor([0.0, 0.099, 0.0])])  # cavity, crown
    slots, d = torch.zeros(2, dtype=torch.long), torch.tensor([[0.0, 0.0, -1.0]] * 2)
    out = {}
    for name, e, e_mouth in (("both", dropped, own), ("own", own, None), ("dropped", dropped, None)):
        frames = FrameBatch(vertices=opened[None], expression=e, identity=torch.zeros(1, dtype=torch.long),
                            latent=torch.zeros(1, avatar.latent_dim), mouth_expression=e_mouth)
        keep, x_c, d_c, face = avatar.embed(pts, d, slots, frames, avatar.mesh_set(frames))
        assert keep.all() and face[0] >= avatar.faces.shape[0] > face[1]
        cond = avatar.condition(frames)
        assert (cond.mouth_rows is not None) == (e_mouth is not None)
        with torch.no_grad():
            out[name] = avatar._field(x_c, d_c, slots, face, cond)[:2]
    for k in range(2):  # σ and rgb: the cavity sample as with its own code, the crown as dropped
        assert torch.allclose(out["both"][k][0], out["own"][k][0]) and torch.allclose(out["both"][k][1], out["dropped"][k][1])
    assert not torch.allclose(out["own"][1][0], out["dropped"][1][0])  # the two codes do give different colours
