"""Mouth metrics (fastminerf.eval.mouth): a frozen closed mouth scores worse than one that opens."""
import numpy as np
import pytest
import torch

from fastminerf.data.regions import Region
from fastminerf.eval.mouth import MouthScore, lip_motion, mouth_box

SIZE = 32
LIP, SKIN, DARK = (0.8, 0.2, 0.25), (0.9, 0.7, 0.6), (0.08, 0.03, 0.03)


def _frame(opening: int):
    """Ground truth of a face whose mouth opens ``opening`` px: (rgb [H, W, 3], seg [H, W])."""
    rgb = torch.tensor(SKIN).expand(SIZE, SIZE, 3).clone()
    seg = np.full((SIZE, SIZE), int(Region.SKIN), np.uint8)
    top, bot = 14, 16 + opening
    rgb[top - 2 : top, 10:22] = torch.tensor(LIP)
    seg[top - 2 : top, 10:22] = Region.UPPER_LIP
    rgb[top:bot, 11:21] = torch.tensor(DARK)
    seg[top:bot, 11:21] = Region.MOUTH_INTERIOR
    rgb[bot : bot + 2, 10:22] = torch.tensor(LIP)
    seg[bot : bot + 2, 10:22] = Region.LOWER_LIP
    return rgb, seg


def test_a_frozen_closed_mouth_scores_worse_on_both_numbers():
    openings = [0, 3, 6, 1, 5, 2, 7, 0, 4]
    follows, frozen = MouthScore(), MouthScore()
    closed, _ = _frame(0)
    rng = torch.Generator().manual_seed(0)
    for o in openings:
        gt, seg = _frame(o)
        noisy = (gt + 0.01 * torch.randn(gt.shape, generator=rng)).clamp(0, 1)
        follows.add(noisy, gt, seg)
        frozen.add(closed, gt, seg)
    good, bad = follows.result(), frozen.result()
    assert good["lip_motion"] > 0.95 and bad["lip_motion"] == 0.0
    assert good["mouth_psnr"] > bad["mouth_psnr"] + 5


def test_box_and_edge_cases():
    _, seg = _frame(3)
    assert mouth_box(seg) == (12 - 3, 21 + 3, 10 - 3, 22 + 3)
    assert mouth_box(np.zeros((8, 8), np.uint8)) is None and mouth_box(None) is None
    assert lip_motion([0.1, 0.2], [0.1, 0.2]) is None
    assert lip_motion([0.1, None, 0.3, 0.5], [0.2, 0.1, 0.4, 0.6]) == pytest.approx(1.0)


def test_lips_only_cast_in_insta_layout_trains_and_reports_mouth_numbers(tmp_path):
    """``synth --mouth lips-only``: INSTA actors without pocket vertices, same images; eval
    reports mouth numbers held out and in transfer."""
    from fastminerf.api import cast_of, load_avatar
    from fastminerf.cli import main
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.data.layout import read_identity
    from fastminerf.eval.evaluate import evaluate_cast
    from fastminerf.train.trainer import train

    root, ref = tmp_path / "cast", tmp_path / "ref"
    args = ["synth", "--identities", "2", "--frames", "10", "--size", "48", "--seed", "1", "--workers", "1", "--quiet"]
    assert main(args + ["--out", str(ref)]) == 0
    assert main(args + ["--out", str(root), "--mouth", "lips-only"]) == 0
    cast, pocket = load_cast([root]), read_identity(ref / "id000")
    d = cast.identities[0]
    assert d.source == "insta" and (root / "id000" / "flame" / "exp").is_dir()
    regions = np.load(root / "id000" / "vertex_regions.npy")
    assert Region.MOUTH_INTERIOR not in regions and Region.UPPER_LIP in regions
    assert d.n_vertices == pocket.n_vertices - int((pocket.vertex_regions == Region.MOUTH_INTERIOR).sum())
    assert (d.image(3) == pocket.image(3)).all() and (d.is_train == pocket.is_train).all()
    assert np.allclose(d.expressions, pocket.expressions, atol=1e-5)
    small = ["data.rays_per_batch=256", "data.frames_per_batch=8", "train.eval_every=0", "train.save_every=0",
             "train.max_minutes=null", "render.occupancy_resolution=32", "train.steps=2"]
    run, _ = train(load_config("tiny_cpu", small), [root], tmp_path / "runs", progress=False)
    avatar = load_avatar(run, device="cpu")[0].eval()
    m = evaluate_cast(avatar, cast_of(avatar), "test", None)
    assert m["mouth_psnr"] is not None and np.isfinite(m["mouth_psnr"])
    assert all("lip_motion" in r and r["mouth_psnr"] is not None for r in m["per_identity"].values())
    assert m["transfer_mouth_psnr"] is not None and "transfer_lip_motion" in m
    assert set(m["transfer_mouth_pairs"]) == set(m["transfer_pairs"])


def test_mouth_fraction_draws_rays_inside_the_mouth_box(tmp_path):
    from fastminerf.cli import main
    from fastminerf.data.cast import load_cast
    from fastminerf.data.rays import RayBatcher

    assert main(["synth", "--identities", "2", "--frames", "6", "--size", "48", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    cast = load_cast([tmp_path / "c"])
    b = RayBatcher(cast, 512, 4, mouth_fraction=1.0)
    r = b.sample()
    box = b.mouth_boxes[torch.searchsorted(b.frame_table, r.frame)]
    x, y = r.xy[:, 0], r.xy[:, 1]
    assert ((x >= box[:, 0]) & (x < box[:, 2]) & (y >= box[:, 1]) & (y < box[:, 3])).all()
    assert (box[:, 2] - box[:, 0] < 48).all()


def test_mouth_weight_marks_mouth_rays_and_weights_their_error(tmp_path):
    from fastminerf.cli import main
    from fastminerf.data.cast import load_cast
    from fastminerf.data.rays import RayBatcher
    from fastminerf.model.losses import photometric

    assert main(["synth", "--identities", "2", "--frames", "6", "--size", "48", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    cast = load_cast([tmp_path / "c"])
    plain, marked = RayBatcher(cast, 2048, 4, seed=3), RayBatcher(cast, 2048, 4, seed=3, mark_mouth=True)
    a, b = plain.sample(), marked.sample()
    assert torch.equal(a.xy, b.xy) and torch.equal(a.frame, b.frame)  # marking draws nothing extra
    assert not a.in_mouth.any()
    box = marked.mouth_boxes[torch.searchsorted(marked.frame_table, b.frame)]
    x, y = b.xy[:, 0], b.xy[:, 1]
    inside = (x >= box[:, 0]) & (x < box[:, 2]) & (y >= box[:, 1]) & (y < box[:, 3])
    assert torch.equal(b.in_mouth, inside) and 0 < int(b.in_mouth.sum()) < 2048 // 4
    pred, target = torch.zeros(4, 3), torch.ones(4, 3)
    w = torch.tensor([1.0, 1.0, 10.0, 10.0])
    assert photometric(pred, target, weight=w).item() == pytest.approx(3 * (1 + 1 + 10 + 10) / 4)
    assert photometric(pred, target, weight=torch.ones(4)).item() == photometric(pred, target).item()


def test_lip_surface_prior_finds_lip_rays_and_adds_its_loss(tmp_path):
    from fastminerf.cli import main
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.data.layout import read_seg
    from fastminerf.train.trainer import Trainer

    assert main(["synth", "--identities", "2", "--frames", "6", "--size", "48", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    cast = load_cast([tmp_path / "c" / "id000", tmp_path / "c" / "id001"])
    cfg = load_config("tiny_cpu", ["data.rays_per_batch=256", "data.frames_per_batch=4", "data.mouth_fraction=1.0",
                                   "render.occupancy_resolution=32", "train.lip_surface_weight=1.0",
                                   "train.dropout_keeps_mouth=true", "model.cavity_levels=4"])
    tr = Trainer(cfg, cast, tmp_path / "run", device="cpu")
    batch = tr.batcher.sample()
    frames, slots = torch.unique(batch.frame, return_inverse=True)
    fb = tr.frames.batch(frames)
    out = tr.avatar.render_rays(batch.origins, batch.directions, slots, fb, None, lip_prior=True)
    seg = np.stack([read_seg(cast.identities[int(cast.frame_identity[f])], int(cast.frame_local[f])) for f in batch.frame])
    on_lips = torch.from_numpy(np.isin(seg[np.arange(len(seg)), batch.xy[:, 1], batch.xy[:, 0]], (120, 130)))
    assert on_lips.sum() > 20
    agree = (out["lip_ray"] == on_lips).float().mean()
    assert agree > 0.85, agree  # the tracked lips are where the image shows them (pixel-edge rays may differ)
    assert ((out["lip_front"] >= 0) & (out["lip_front"] <= out["opacity"] + 1e-5)).all()
    assert (out["lip_front"][~out["lip_ray"]] == 0).all()
    terms = tr.avatar.loss_terms(out, torch.zeros(len(batch), 3), batch.rgba[:, 3], fb, cfg.train)
    assert "lip_surface" in terms and torch.isfinite(terms["lip_surface"])
    assert tr.train_step().loss > 0


def test_open_canonical_mouth_separates_the_lips_and_keeps_the_eyes(tmp_path):
    from fastminerf.cli import main
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.model.cast_info import CastInfo, open_mouth_offset
    from fastminerf.model.loading import build_avatar

    assert main(["synth", "--identities", "2", "--frames", "40", "--size", "32", "--workers", "1", "--quiet",
                 "--out", str(tmp_path / "c")]) == 0
    cast = load_cast([tmp_path / "c" / "id000", tmp_path / "c" / "id001"])
    info = CastInfo.from_cast(cast)
    assert info.mouth_open is not None and info.mouth_open.shape == cast.canonical.shape and info.mouth_open_amount > 0
    vr = cast.vertex_regions
    lower, upper = vr == 120, vr == 130

    def gap(v):
        return float(np.linalg.norm(v[lower].mean(0) - v[upper].mean(0)))

    opened = cast.canonical + info.mouth_open
    assert gap(opened) - gap(cast.canonical) == pytest.approx(info.mouth_open_amount, rel=0.35)
    eyes = np.isin(vr, (210,))
    assert np.abs(info.mouth_open[eyes]).max() < 0.2 * np.abs(info.mouth_open).max()
    lo, hi = info.canonical_aabb[:3], info.canonical_aabb[3:]
    assert ((opened >= lo) & (opened <= hi)).all()
    # the model uses it only when asked; without lip regions there is nothing to open
    av_open = build_avatar(load_config("tiny_cpu", ["model.canonical_mouth=open"]), info, "cpu")
    av_neutral = build_avatar(load_config("tiny_cpu", ["model.canonical_mouth=neutral"]), info, "cpu")
    assert np.allclose(av_open.canonical.numpy(), opened) and np.allclose(av_neutral.canonical.numpy(), cast.canonical)
    train = cast.frames("train")
    assert open_mouth_offset(cast.vertices(train), np.zeros(len(train), np.int64), cast.canonical[None], cast.canonical,
                             None) == (None, 0.0)
    # checkpoints carry it as plain tensors
    back = CastInfo.from_dict(info.to_dict())
    assert np.array_equal(back.mouth_open, info.mouth_open) and back.mouth_open_amount == info.mouth_open_amount


def test_lips_of_a_region_less_lip_seam_mesh_are_found_from_the_seam(tmp_path):
    from fastminerf.cli import main
    from fastminerf.config import load_config
    from fastminerf.data.cast import load_cast
    from fastminerf.model.cast_info import CastInfo
    from fastminerf.model.loading import build_avatar

    assert main(["synth", "--identities", "2", "--frames", "40", "--size", "32", "--workers", "1", "--quiet",
                 "--mouth", "lips-only", "--out", str(tmp_path / "c")]) == 0
    roots = sorted(p for p in (tmp_path / "c").iterdir() if p.is_dir())
    cast = load_cast(roots)
    assert cast.vertex_regions is None  # INSTA layout: no region ids, like FLAME
    truth = np.load(roots[0] / "vertex_regions.npy")  # what synth knew (not read by the loader)
    info = CastInfo.from_cast(cast)
    assert info.mouth_open is not None  # the seam gave the lips, the frames the opening
    av = build_avatar(load_config("tiny_cpu"), info, "cpu")
    lip_faces = av.lip_face_all[: len(info.faces)].numpy()
    true_lip = np.isin(truth[np.asarray(info.faces)], (120, 130)).sum(1) >= 2
    assert (lip_faces & true_lip).sum() >= 0.8 * true_lip.sum()  # finds the lips...
    assert (lip_faces & ~true_lip).sum() <= 0.5 * true_lip.sum()  # ...and not much else
