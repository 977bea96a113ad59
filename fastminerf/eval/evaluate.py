"""Held-out evaluation: PSNR / SSIM per identity, and transfer PSNR against ground truth.

Held-out frames are each identity's test split (the last 10 % of its video). They have no
trained latent code, so they use the identity's mean latent code. ``psnr`` is over the
whole image on the eval background; ``psnr_masked`` only over pixels where the ground
truth or the render is head (alpha / opacity > 0.5) — the harder number. ``mouth_psnr``
and ``lip_motion`` (see :mod:`fastminerf.eval.mouth`) need the ground truth's seg_mask and
are None without one.
"""
from __future__ import annotations

import json

import numpy as np
import torch

from ..data.layout import read_identity, read_seg
from ..model.frames import CastFrames
from ..progress import Progress
from ..render.transfer import driven_frames
from ..render.views import background_color, composite_target, render_image
from .metrics import psnr, ssim
from .mouth import MouthScore, mean_of


def _score(avatar, fb, c2h, K, rgba, H, W, bg, seg=None, mouth: MouthScore | None = None) -> tuple[float, float, float]:
    out = render_image(avatar, fb, c2h, K, H, W, bg)
    gt = composite_target(rgba, bg).to(out["rgb"].device)
    if mouth is not None:
        mouth.add(out["rgb"], gt, seg)
    mask = (torch.as_tensor(np.asarray(rgba)[..., 3] > 127).to(gt.device)) | (out["opacity"] > 0.5)
    return psnr(out["rgb"], gt), ssim(out["rgb"], gt), psnr(out["rgb"], gt, mask)


def _pick(frames: np.ndarray, k: int | None) -> np.ndarray:
    if k is None or k >= len(frames):
        return frames
    return frames[np.linspace(0, len(frames) - 1, k).round().astype(int)]


class _Count:
    """Frames done across calls, reported to an optional :class:`~fastminerf.progress.Progress`."""

    def __init__(self, bar: Progress | None = None):
        self.bar, self.done = bar, 0

    def tick(self, detail: str = "") -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.done, detail)


@torch.no_grad()
def evaluate_identity(avatar, cast, identity: int, split: str = "test", frames: int | None = None,
                      background: str = "white", count: _Count | None = None) -> dict:
    """PSNR / SSIM / masked PSNR of one cast identity over (at most ``frames`` evenly spaced)
    frames of ``split``. Returns {"psnr", "ssim", "psnr_masked", "mouth_psnr", "lip_motion",
    "n_frames", "values": [...], "mouth_values": [...]} where ``values`` holds the per-frame
    (psnr, ssim, psnr_masked) and ``mouth_values`` the per-frame mouth PSNRs."""
    bg = background_color(background, avatar.canonical.device)
    batches = CastFrames(avatar, cast)
    data, offset = cast.identities[identity], int(cast.frame_offset[identity])
    vals, mouth = [], MouthScore()
    count = count or _Count()
    for f in _pick(cast.frames(split, identity), frames):
        fb = batches.batch(np.array([f]), own_latents=(split == "train"))
        vals.append(_score(avatar, fb, torch.from_numpy(cast.cam_to_head[f]), torch.from_numpy(cast.intrinsics[f]),
                           cast.image(f), cast.height, cast.width, bg, read_seg(data, int(f) - offset), mouth))
        count.tick(f"{cast.names[identity]}  psnr {np.mean([v[0] for v in vals]):5.2f} dB")
    p, s, m = (np.array(v) for v in zip(*vals))
    return {"psnr": float(p.mean()), "ssim": float(s.mean()), "psnr_masked": float(m.mean()), **mouth.result(),
            "n_frames": len(vals), "values": vals, "mouth_values": mouth.psnr}


@torch.no_grad()
def evaluate_cast(avatar, cast, split: str = "test", frames_per_identity: int | None = None, background: str = "white",
                  transfer: bool = True, progress: bool = False) -> dict:
    """Evaluate a model on a cast's held-out frames (and transfer ground truth when present).

    ``progress``: show a progress line with ETA (frames rendered; transfer pairs after).

    Returns:
        {"psnr", "ssim", "psnr_masked", "mouth_psnr", "lip_motion", "n_frames",
         "per_identity": {name: {...}}, "transfer_psnr", "transfer_ssim", "transfer_mouth_psnr",
         "transfer_lip_motion", "transfer_pairs" (only with ground truth)}. ``mouth_psnr`` is
        the mean over frames, ``lip_motion`` the mean of the per-identity correlations.
    """
    per, vals, mvals = {}, [], []
    total = sum(len(_pick(cast.frames(split, k), frames_per_identity)) for k in range(len(cast.names)))
    with Progress(total, "eval", unit="frame", enabled=progress) as bar:
        count = _Count(bar)
        for k, name in enumerate(cast.names):
            r = evaluate_identity(avatar, cast, k, split, frames_per_identity, background, count)
            vals += r.pop("values")
            mvals += r.pop("mouth_values")
            per[name] = r
    p, s, m = (np.array(v) for v in zip(*vals))
    res = {"psnr": float(p.mean()), "ssim": float(s.mean()), "psnr_masked": float(m.mean()),
           "mouth_psnr": mean_of(mvals), "lip_motion": mean_of(r["lip_motion"] for r in per.values()),
           "n_frames": len(vals), "per_identity": per}
    if transfer:
        res.update(evaluate_transfer(avatar, cast, frames_per_identity, background, progress=progress))
    return res


@torch.no_grad()
def evaluate_transfer(avatar, cast, frames_per_pair: int | None = None, background: str = "white",
                      expression_of_a: bool = False, progress: bool = False) -> dict:
    """Transfer PSNR against cross-reenactment ground truth (``<A>/transfer/<B>/`` folders).

    Identity A is driven by B's held-out frames through the same code path as
    ``fastminerf render --expressions-from`` (delta transfer of B's meshes onto A's
    neutral mesh, B's expressions and head poses); compared with the ground truth render.
    ``cast`` may hold more identities than the model was trained on: identities the model
    does not know are skipped as A but serve as drivers B (unseen people's expressions).
    ``expression_of_a``: condition on A's mean training expression instead of B's (mesh and
    pose stay B's) — how much identity travels through the expression code
    (benchmarks/expression_leak.py). ``progress``: a progress line with ETA (pairs).
    Returns {} when the cast has no transfer folders.
    Returns {"transfer_psnr", "transfer_ssim", "transfer_mouth_psnr", "transfer_lip_motion"
    (mean over pairs), "transfer_pairs": {"A<-B": psnr}, "transfer_mouth_pairs": {"A<-B":
    {"mouth_psnr", "lip_motion"}}}.
    """
    bg = background_color(background, avatar.canonical.device)
    pairs, ps, ss, mouths = {}, [], [], {}
    todo = [(a_idx, d, sub) for a_idx, d in enumerate(cast.identities)
            if (d.root / "transfer").is_dir() and d.name in avatar.info.names
            for sub in sorted(p for p in (d.root / "transfer").iterdir() if (p / "transforms_test.json").is_file())
            if sub.name in cast.names]
    with Progress(len(todo), "transfer eval", unit="pair", enabled=progress and bool(todo)) as bar:
        for n_done, (a_idx, d, sub) in enumerate(todo, 1):
            _transfer_pair(avatar, cast, a_idx, d, sub, frames_per_pair, bg, expression_of_a, pairs, ps, ss, mouths)
            bar.update(n_done, f"{d.name}<-{sub.name}  psnr {pairs[f'{d.name}<-{sub.name}']:5.2f} dB")
    if not ps:
        return {}
    mvals = [v for m in mouths.values() for v in m.pop("values")]
    return {"transfer_psnr": float(np.mean(ps)), "transfer_ssim": float(np.mean(ss)),
            "transfer_mouth_psnr": mean_of(mvals), "transfer_lip_motion": mean_of(m["lip_motion"] for m in mouths.values()),
            "transfer_pairs": pairs, "transfer_mouth_pairs": mouths}


def _transfer_pair(avatar, cast, a_idx, d, sub, frames_per_pair, bg, expression_of_a, pairs, ps, ss, mouths) -> None:
    """Score identity ``a_idx`` driven by the transfer folder ``sub``; appends to the accumulators."""
    gt = read_identity(sub)
    driver = sub.name
    b_idx = cast.names.index(driver)
    src = _driver_frames(sub, cast, b_idx)
    keep = _pick(np.arange(len(src)), frames_per_pair)
    pp, sp, mouth = [], [], MouthScore()
    mean_e = cast.expressions[cast.frames("train", a_idx)].mean(0, keepdims=True) if expression_of_a else None
    for j in keep:
        fb, c2h, K = driven_frames(avatar, cast, a_idx, np.array([src[j]]))
        if mean_e is not None:
            fb.expression = torch.from_numpy(mean_e).to(fb.expression.device)
        out = render_image(avatar, fb, c2h[0], K[0], cast.height, cast.width, bg)
        target = composite_target(gt.image(int(j)), bg).to(out["rgb"].device)
        mouth.add(out["rgb"], target, read_seg(gt, int(j)))
        pp.append(psnr(out["rgb"], target))
        sp.append(ssim(out["rgb"], target))
    pairs[f"{d.name}<-{driver}"] = float(np.mean(pp))
    mouths[f"{d.name}<-{driver}"] = mouth.result() | {"values": mouth.psnr}
    ps += pp
    ss += sp


def _driver_frames(sub, cast, b_idx: int) -> np.ndarray:
    """Global frames of the driver that a transfer folder was rendered from."""
    meta = json.loads((sub / "transforms_test.json").read_text()).get("transfer", {})
    local = np.asarray(meta.get("driver_frames", []), np.int64)
    if local.size == 0:  # default: the driver's held-out split
        return cast.frames("test", b_idx)
    return cast.frame_offset[b_idx] + local
