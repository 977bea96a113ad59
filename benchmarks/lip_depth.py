"""Where a trained model puts the lips: rendered depth and density against the tracked mesh.

    python benchmarks/lip_depth.py --run RUN_OR_CKPT --cast CAST_DIR [--split train] [--frames 5]

For pixels of the ground truth's upper lip (seg 130), lower lip (120) and skin (250) in a few
frames of the first identity, the rays are marched and shaded as in training and compared with
the ray's first hit on the frame's tracked mesh (+ cavity when on):

- ``depth`` — rendered expected depth minus the mesh hit, median, mm (negative = in front);
- ``spread`` — weight-weighted std of the depth, median, mm;
- ``sigma@hit`` — median σ of the samples within 1.5 march steps of the hit;
- ``lip share`` — share of the rendered weight on samples whose nearest triangle is a lip;
- ``render`` / ``truth`` — mean colour of those pixels.

This found why the demo's lips render as skin (benchmarks/results/mouth.md): the lip rays stop
on a skin-coloured shell 2–10 mm in front of the lips (nearly all their weight on samples
whose nearest triangle is a lip), while skin rays end on the mesh.
"""
from __future__ import annotations

import argparse
import glob
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT)]

from fastminerf.data.cast import load_cast  # noqa: E402
from fastminerf.data.layout import read_seg  # noqa: E402
from fastminerf.data.rays import pixel_rays  # noqa: E402
from fastminerf.model.frames import CastFrames  # noqa: E402
from fastminerf.model.loading import load_avatar  # noqa: E402
from fastminerf.ops.composite import render_weights_torch  # noqa: E402
from fastminerf.ops.march import march_rays  # noqa: E402

REGIONS = {130: "upper lip", 120: "lower lip", 250: "skin"}


def checkpoint_of(path: str) -> str:
    p = Path(path)
    if p.is_file():
        return str(p)
    found = sorted(glob.glob(str(p / "**" / "checkpoints" / "*.ckpt"), recursive=True))
    if not found:
        raise SystemExit(f"error: {path}: no checkpoints/*.ckpt below it")
    return found[-1]


@torch.no_grad()
def region_rows(avatar, cast, frames, pixels_per_region: int = 40) -> list[dict]:
    """One row per (frame, region) — see the module docstring."""
    cf, rows = CastFrames(avatar, cast), []
    for f in frames:
        seg = read_seg(cast.identities[int(cast.frame_identity[f])], int(cast.frame_local[f]))
        if seg is None:
            continue
        fb = cf.batch(np.array([f]), own_latents=bool(cast.is_train[f]))
        meshes, cond = avatar.mesh_set(fb), avatar.condition(fb)
        for reg, name in REGIONS.items():
            ys, xs = np.nonzero(seg == reg)
            if len(ys) == 0:
                continue
            pick = np.linspace(0, len(ys) - 1, min(pixels_per_region, len(ys))).astype(int)
            ys, xs = torch.from_numpy(ys[pick]), torch.from_numpy(xs[pick])
            n = len(ys)
            o, d = pixel_rays(torch.from_numpy(cast.cam_to_head[[f]]).expand(n, 4, 4),
                              torch.from_numpy(cast.intrinsics[[f]]).expand(n, -1), xs.float(), ys.float())
            slots = torch.zeros(n, dtype=torch.long)
            t_hit = meshes.first_hit(o, d, slots)
            ray_idx, t0, t1 = march_rays(o, d, avatar.head_aabb, avatar.occupancy.bitfield, avatar.dt)
            x = o[ray_idx] + d[ray_idx] * (0.5 * (t0 + t1))[:, None]
            keep, x_c, d_c, face = avatar.embed(x, d[ray_idx], slots[ray_idx], fb, meshes)
            sigma, rgb, _ = avatar._field(x_c, d_c, slots[ray_idx][keep], face, cond)
            r, a, b = ray_idx[keep], t0[keep], t1[keep]
            w, _, _ = render_weights_torch(sigma, a, b, r, n)
            tm = 0.5 * (a + b)
            W = torch.zeros(n).index_add_(0, r, w).clamp_min(1e-6)
            depth = torch.zeros(n).index_add_(0, r, w * tm) / W
            var = torch.zeros(n).index_add_(0, r, w * tm**2) / W - depth**2
            col = torch.zeros(n, 3).index_add_(0, r, w[:, None] * rgb)
            lipw = torch.zeros(n).index_add_(0, r, w * avatar.lip_face_all[face].float()) / W
            near = (tm - t_hit[r]).abs() < 1.5 * avatar.dt
            ok = torch.isfinite(t_hit)
            truth = torch.from_numpy(cast.pixels(np.full(n, f), ys.numpy(), xs.numpy())).float()[:, :3] / 255
            rows.append({"frame": int(f), "region": name,
                         "depth_mm": round(float((1000 * (depth - t_hit))[ok].median()), 1),
                         "spread_mm": round(float(1000 * var.clamp_min(0).sqrt().median()), 1),
                         "sigma_at_hit": round(float(sigma[near].median()), 2) if near.any() else None,
                         "lip_share": round(float(lipw.mean()), 2),
                         "render": [round(float(v), 2) for v in col.mean(0)],
                         "truth": [round(float(v), 2) for v in truth.mean(0)]})
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder or checkpoint")
    p.add_argument("--cast", required=True, help="cast folder (its id* identities)")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--frames", type=int, default=5, help="frames of the first identity")
    a = p.parse_args()
    avatar, _ = load_avatar(checkpoint_of(a.run), device="cpu")
    avatar.eval()
    cast = load_cast(sorted(glob.glob(str(Path(a.cast) / "id*"))))
    fr = cast.frames(a.split, 0)
    rows = region_rows(avatar, cast, fr[np.linspace(0, len(fr) - 1, min(a.frames, len(fr))).astype(int)])
    print("| frame | region | depth (mm) | spread (mm) | σ at hit | lip share | render | truth |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['frame']} | {r['region']} | {r['depth_mm']:+.1f} | {r['spread_mm']} | {r['sigma_at_hit']} | "
              f"{r['lip_share']} | {r['render']} | {r['truth']} |")


if __name__ == "__main__":
    main()
