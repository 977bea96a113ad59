"""Why the mouth is lost: numbers on where mouth rays and mouth-interior points go (issue 13).

    python benchmarks/mouth_diag.py --lips CAST_LIPS --pocket CAST_POCKET [--run RUN_DIR ...]
        [--identities 2] [--out FILE.json]

Geometry (no model): the true surface inside an open mouth is where a ray through a GT
mouth-interior pixel (seg_mask 140) first hits the *pocket* cast's mesh (same frames,
cameras and lip vertices as the lips-only cast). That point is carried to canonical space
through the lips-only mesh as the model sees it — with and without the virtual mouth cavity
(model/cavity.py) — and through the pocket mesh. Reported: its distance to the nearest mesh
triangle (far-cutoff band: ``model.far_distance`` × diagonal), the share beyond the band (cut:
σ = 0), and the canonical distance to the nearest canonical lip vertex (≈ 0: the interior
lands on lip surface that closed frames show — the two must share one colour).

Rays (no model): share of training rays drawn in the GT mouth box at mouth_fraction 0 / 0.25.

Model (each ``--run``): share of the true interior points in occupied cells of its occupancy
grid; held-out mouth_psnr with the true expression vs the training-mean expression (what the
conditioning contributes in the mouth) and whole-image change; training frames with their
own latent codes vs the identity-mean code (what latent codes absorb in the mouth).
Writes JSON (``--out``, default benchmarks/results/mouth_diag.json) and prints markdown.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from common import dumps, environment, load_averages, write_atomic  # noqa: E402


def interior_points(lips, pocket, frames):
    """True open-mouth surface points: (points [N, 3] head space, frame [N]) of GT interior pixels."""
    from fastminerf.data.layout import read_seg
    from fastminerf.data.rays import pixel_rays
    from fastminerf.ops.embed import MeshSet

    pts, fr = [], []
    for f in frames:
        i, loc = int(lips.frame_identity[f]), int(lips.frame_local[f])
        seg = read_seg(lips.identities[i], loc)
        ys, xs = np.nonzero(seg == 140)
        if ys.size == 0:
            continue
        c2h = torch.from_numpy(lips.cam_to_head[f])[None].expand(ys.size, 4, 4)
        K = torch.from_numpy(lips.intrinsics[f])[None].expand(ys.size, 4)
        o, d = pixel_rays(c2h, K, torch.from_numpy(xs).float(), torch.from_numpy(ys).float())
        ms = MeshSet(torch.from_numpy(pocket.vertices(np.array([f]))), torch.from_numpy(pocket.faces.astype(np.int64)))
        t = ms.first_hit(o, d, torch.zeros(ys.size, dtype=torch.long))
        ok = torch.isfinite(t)
        pts.append(o[ok] + d[ok] * t[ok, None])
        fr.append(np.full(int(ok.sum()), f))
    return torch.cat(pts), np.concatenate(fr)


def carry(points, frames, cast, canonical, faces, cavity=None):
    """Canonical points [N, 3] and distance to the nearest triangle [N] of head-space points."""
    from fastminerf.ops.embed import MeshSet, embed_points_torch

    uniq, slot = np.unique(frames, return_inverse=True)
    V = torch.from_numpy(cast.vertices(uniq))
    can, fc = torch.from_numpy(canonical), torch.from_numpy(faces.astype(np.int64))
    if cavity is not None:
        V, can, fc = cavity.extend(V), cavity.canonical_all, cavity.faces_all
    ms = MeshSet(V, fc)
    s = torch.from_numpy(slot)
    face, dist = ms.nearest(points, s)
    x_c, _, _ = embed_points_torch(points, None, s, face, V, can, fc)
    return x_c, dist


def geometry(lips, pocket, n_ids: int, far_frac: float) -> dict:
    from fastminerf.model.cavity import MouthCavity, find_mouth_loop

    frames = np.concatenate([lips.frames("all", i) for i in range(n_ids)])
    pts, fr = interior_points(lips, pocket, frames)
    diag = float(np.linalg.norm(np.ptp(lips.canonical, 0)))
    far = far_frac * diag
    regions = np.load(lips.identities[0].root / "vertex_regions.npy")
    lip_v = torch.from_numpy(lips.canonical[np.isin(regions, (120, 130))])
    loop = find_mouth_loop(lips.canonical, lips.faces)
    cavs = [(f"lips_only+cavity(depth {d})", lips, MouthCavity(torch.from_numpy(lips.canonical),
             torch.from_numpy(lips.faces.astype(np.int64)), loop, d)) for d in (0.8, 1.2)]
    out = {"interior_points": int(pts.shape[0]), "frames_with_open_mouth": int(np.unique(fr).size), "far_band_m": far}
    for name, cast, cavity in (("lips_only", lips, None), *cavs, ("pocket", pocket, None)):
        x_c, dist = carry(pts, fr, cast, cast.canonical, cast.faces, cavity)
        to_lip = torch.cdist(x_c, lip_v).amin(1)
        out[name] = {"dist_to_mesh_mm_median": float(dist.median() * 1e3), "beyond_far_band": float((dist > far).float().mean()),
                     "canonical_to_lip_surface_mm_median": float(to_lip.median() * 1e3),
                     "canonical_within_2mm_of_lip_surface": float((to_lip < 2e-3).float().mean())}
    return out, pts, fr


def ray_shares(lips, n_ids: int) -> dict:
    from fastminerf.data.rays import RayBatcher, mouth_boxes

    out = {}
    for mf in (0.0, 0.25):
        b = RayBatcher(lips, 2048, 32, 0.95, mouth_fraction=mf, seed=0)
        boxes = torch.from_numpy(mouth_boxes(lips, b.frame_table.numpy(), np.zeros((len(b.frame_table), 4), np.int64)))
        slot_of = {int(f): k for k, f in enumerate(b.frame_table.tolist())}
        hit = n = 0
        for _ in range(20):
            rb = b.sample()
            bx = boxes[torch.tensor([slot_of[int(f)] for f in rb.frame.tolist()])]
            x, y = rb.xy[:, 0], rb.xy[:, 1]
            hit += int(((x >= bx[:, 0]) & (x < bx[:, 2]) & (y >= bx[:, 1]) & (y < bx[:, 3])).sum())
            n += len(rb)
        out[f"mouth_fraction={mf}"] = hit / n
    return out


def sample_shares(avatar, lips, batches) -> dict:
    """Share of marched (kept) samples on rays inside the GT mouth box, training batches at
    mouth_fraction 0 (4 batches of 2048 rays), and samples per mouth / other ray."""
    from fastminerf.data.rays import RayBatcher, mouth_boxes

    b = RayBatcher(lips, 2048, 32, 0.95, seed=1)
    boxes = torch.from_numpy(mouth_boxes(lips, b.frame_table.numpy(), np.zeros((len(b.frame_table), 4), np.int64)))
    slot_of = {int(f): k for k, f in enumerate(b.frame_table.tolist())}
    n = {True: [0, 0], False: [0, 0]}
    for _ in range(4):
        rb = b.sample()
        bx = boxes[torch.tensor([slot_of[int(f)] for f in rb.frame.tolist()])]
        x, y = rb.xy[:, 0], rb.xy[:, 1]
        inm = (x >= bx[:, 0]) & (x < bx[:, 2]) & (y >= bx[:, 1]) & (y < bx[:, 3])
        uniq, slots = rb.frame.unique(return_inverse=True)
        fb = batches.batch(uniq, own_latents=True)
        for m in (True, False):
            sel = inm == m
            with torch.enable_grad():  # full shading path (no early stop): every marched sample
                out = avatar.render_rays(rb.origins[sel], rb.directions[sel], slots[sel], fb)
            n[m][0] += int(out["n_samples"])
            n[m][1] += int(sel.sum())
    total = n[True][0] + n[False][0]
    return {"mouth_ray_share": n[True][1] / (n[True][1] + n[False][1]), "mouth_sample_share": n[True][0] / max(total, 1),
            "samples_per_mouth_ray": n[True][0] / max(n[True][1], 1), "samples_per_other_ray": n[False][0] / max(n[False][1], 1)}


@torch.no_grad()
def model_checks(run: str, lips, pts, fr, n_ids: int) -> dict:
    from fastminerf.data.layout import read_seg
    from fastminerf.eval.metrics import psnr
    from fastminerf.eval.mouth import mouth_box, mouth_psnr
    from fastminerf.model.frames import CastFrames
    from fastminerf.model.loading import load_avatar
    from fastminerf.render.views import background_color, composite_target, render_image

    avatar = load_avatar(run, device="cpu")[0].eval()
    occ = avatar.occupancy
    cells = occ.cells_of(pts)
    res = {"run": run, "mouth_cavity": avatar.cavity is not None,
           "interior_points_in_occupied_cells": float(occ.bitfield.reshape(-1)[cells].float().mean())}
    bg = background_color("white")
    batches = CastFrames(avatar, lips)
    res["samples"] = sample_shares(avatar, lips, batches)

    def score(f, own, mean_expr=False):
        fb = batches.batch(np.array([f]), own_latents=own)
        if mean_expr:
            fb.expression = avatar.expr_mean[None].clone()
        out = render_image(avatar, fb, torch.from_numpy(lips.cam_to_head[f]), torch.from_numpy(lips.intrinsics[f]),
                           lips.height, lips.width, bg)
        gt = composite_target(lips.image(f), bg)
        seg = read_seg(lips.identities[int(lips.frame_identity[f])], int(lips.frame_local[f]))
        return mouth_psnr(out["rgb"], gt, mouth_box(seg)), psnr(out["rgb"], gt)

    test = np.concatenate([lips.frames("test", i) for i in range(n_ids)])
    open_train = [f for f in np.unique(fr) if lips.is_train[f] and lips.frame_identity[f] < n_ids][:8]
    rows = {"heldout_true_expr": [score(f, False) for f in test], "heldout_mean_expr": [score(f, False, True) for f in test],
            "train_open_own_latent": [score(f, True) for f in open_train],
            "train_open_mean_latent": [score(f, False) for f in open_train]}
    for k, v in rows.items():
        m, w = zip(*v)
        res[k] = {"mouth_psnr": float(np.mean(m)), "psnr": float(np.mean(w)), "frames": len(v)}
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lips", required=True)
    p.add_argument("--pocket", required=True)
    p.add_argument("--run", action="append", default=[])
    p.add_argument("--identities", type=int, default=2)
    p.add_argument("--far", type=float, default=0.03, help="model.far_distance of the runs (tiny_cpu: 0.03)")
    p.add_argument("--out")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from fastminerf.data.cast import load_cast

    dirs = sorted(d for d in Path(a.lips).iterdir() if d.is_dir())
    lips = load_cast(dirs)
    pocket = load_cast([Path(a.pocket) / d.name for d in dirs])
    res = {"command": " ".join(["python", "benchmarks/mouth_diag.py", *(argv or sys.argv[1:])]),
           "load_average_start": load_averages(), "rays": ray_shares(lips, a.identities)}
    res["geometry"], pts, fr = geometry(lips, pocket, a.identities, a.far)
    res["models"] = [model_checks(r, lips, pts, fr, a.identities) for r in a.run]
    res["environment"] = environment()
    out = Path(a.out) if a.out else ROOT / "benchmarks" / "results" / "mouth_diag.json"
    write_atomic(out, dumps(res))
    print(dumps({k: v for k, v in res.items() if k != "environment"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
