"""Camera rays and the training ray batcher.

Rays live in head space (the tracked meshes' space): origin = camera centre, direction
through the pixel centre (x + 0.5, y + 0.5) with OpenCV camera axes.

The batcher draws B rays per step across many identities and frames at once: identities
uniformly, then frames uniformly within the identity, then pixels — a fraction
``inside_fraction`` (default 0.95, MI-NeRF) inside the frame's projected head box and the
rest outside it; optionally a fraction ``mouth_fraction`` of all rays inside the ground
truth's mouth box instead (lips + mouth interior of the seg_mask, grown by 3 px: the mouth
is a few % of the head's pixels but carries most of what an avatar is judged by). Everything is vectorised; images stay uint8 until the gathered pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .cast import Cast
from .layout import read_seg
from .regions import MOUTH_REGIONS


def pixel_rays(cam_to_head: torch.Tensor, intrinsics: torch.Tensor, xs: torch.Tensor, ys: torch.Tensor):
    """Rays through pixel centres.

    Args:
        cam_to_head: [B, 4, 4] camera-to-head, OpenCV axes. intrinsics: [B, 4] (fx, fy, cx, cy).
        xs, ys: [B] pixel column / row (integer or float; +0.5 is added here).
    Returns:
        origins [B, 3], directions [B, 3] (unit), both float32.
    """
    fx, fy, cx, cy = intrinsics.unbind(-1)
    d_cam = torch.stack([(xs + 0.5 - cx) / fx, (ys + 0.5 - cy) / fy, torch.ones_like(fx)], -1)
    d = torch.einsum("bij,bj->bi", cam_to_head[:, :3, :3], d_cam)
    return cam_to_head[:, :3, 3].clone(), d / d.norm(dim=-1, keepdim=True)


def image_rays(cam_to_head: torch.Tensor, intrinsics: torch.Tensor, height: int, width: int):
    """All rays of one image, row-major. cam_to_head [4, 4], intrinsics [4] →
    origins [H·W, 3], directions [H·W, 3]."""
    dev = cam_to_head.device
    ys, xs = torch.meshgrid(torch.arange(height, device=dev), torch.arange(width, device=dev), indexing="ij")
    n = height * width
    return pixel_rays(cam_to_head[None].expand(n, 4, 4), intrinsics[None].expand(n, 4), xs.reshape(-1).float(), ys.reshape(-1).float())


def head_boxes(cast: Cast, frames: np.ndarray, margin: float = 0.08, max_vertices: int = 2000, chunk: int = 256) -> np.ndarray:
    """Projected head boxes of global frames.

    The box of a frame bounds its tracked mesh projected into the image, grown by
    ``margin`` × box size on each side (hair and shoulders stick out of head meshes) and
    clipped to the image. Returns [K, 4] int64 (x0, y0, x1, y1), x1/y1 exclusive.
    """
    V = cast.canonical.shape[0]
    sub = np.arange(0, V, max(1, V // max_vertices))
    out = np.empty((len(frames), 4), np.int64)
    for s in range(0, len(frames), chunk):
        f = frames[s : s + chunk]
        v = cast.vertices(f)[:, sub]  # [k, v, 3] head space
        c2h = cast.cam_to_head[f]
        R, t = c2h[:, :3, :3], c2h[:, :3, 3]
        pc = np.einsum("kji,kvj->kvi", R, v - t[:, None])  # head → camera
        z = np.maximum(pc[..., 2], 1e-6)
        K = cast.intrinsics[f]
        u = K[:, None, 0] * pc[..., 0] / z + K[:, None, 2]
        w = K[:, None, 1] * pc[..., 1] / z + K[:, None, 3]
        x0, x1, y0, y1 = u.min(1), u.max(1), w.min(1), w.max(1)
        mx, my = margin * (x1 - x0), margin * (y1 - y0)
        box = np.stack([np.floor(x0 - mx), np.floor(y0 - my), np.ceil(x1 + mx) + 1, np.ceil(y1 + my) + 1], -1)
        box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, cast.width)
        box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, cast.height)
        bad = (box[:, 2] <= box[:, 0]) | (box[:, 3] <= box[:, 1])  # head off-screen: whole image
        box[bad] = [0, 0, cast.width, cast.height]
        out[s : s + chunk] = box
    return out


def mouth_boxes(cast: Cast, frames: np.ndarray, fallback: np.ndarray, dilate: int = 3) -> np.ndarray:
    """Ground-truth mouth boxes of global frames: [K, 4] int64 (x0, y0, x1, y1), x1/y1
    exclusive, the bounding box of the seg_mask's mouth regions grown by ``dilate`` px;
    ``fallback`` [K, 4] (the head box) for frames without a seg_mask or mouth pixels."""
    out = np.array(fallback, np.int64, copy=True)
    for k, f in enumerate(frames):
        i = int(cast.frame_identity[f])
        seg = read_seg(cast.identities[i], int(cast.frame_local[f]))
        if seg is None:
            continue
        ys, xs = np.nonzero(np.isin(seg, MOUTH_REGIONS))
        if ys.size:
            out[k] = (max(xs.min() - dilate, 0), max(ys.min() - dilate, 0), min(xs.max() + 1 + dilate, cast.width),
                      min(ys.max() + 1 + dilate, cast.height))
    return out


@dataclass
class RayBatch:
    """B rays with their supervision.

    Attributes:
        origins, directions: [B, 3] float32, head space (directions unit length).
        identity: [B] int64 identity index. frame: [B] int64 global frame index.
        rgba: [B, 4] float32 target colour and alpha in [0, 1].
        xy: [B, 2] int64 pixel column, row.
        in_mouth: [B] bool, the pixel lies in its frame's ground-truth mouth box (all False
            when the batcher has no mouth boxes: ``mouth_fraction`` 0 and ``mark_mouth`` off).
    """

    origins: torch.Tensor
    directions: torch.Tensor
    identity: torch.Tensor
    frame: torch.Tensor
    rgba: torch.Tensor
    xy: torch.Tensor
    in_mouth: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.origins.shape[0]


class RayBatcher:
    """Draws ray batches across identities and frames of one split.

    Args:
        cast: the loaded cast.
        rays_per_batch: B.
        frames_per_batch: K frames drawn per step (identity-uniform); rays are spread
            uniformly over them. Bounds per-step work that scales with frames (meshes).
        inside_fraction: share of rays inside the projected head box (MI-NeRF: 0.95).
        mouth_fraction: share of rays drawn inside the ground truth's mouth box (0 = off).
        mark_mouth: compute the mouth boxes even when ``mouth_fraction`` is 0, so every
            batch says which rays fall in them (``RayBatch.in_mouth``; the mouth loss weight).
        split: "train" (default) or "test" / "all".
        device: where returned tensors live.
        seed: seed of the batcher's own generator (its state is saved in checkpoints).
        frames: optional global frames [M] to draw from instead of the split (fine-tuning on
            one identity, adapting from its first seconds); identities are still drawn
            uniformly among those present, frame indices stay global.
    """

    def __init__(self, cast: Cast, rays_per_batch: int, frames_per_batch: int = 64, inside_fraction: float = 0.95, *,
                 split: str = "train", device: str | torch.device = "cpu", seed: int = 0, frames: np.ndarray | None = None,
                 mouth_fraction: float = 0.0, mark_mouth: bool = False):
        self.cast, self.B = cast, int(rays_per_batch)
        self.frames_per_batch = max(1, min(int(frames_per_batch), self.B))
        self.inside, self.mouth = float(inside_fraction), float(mouth_fraction)
        self.device = torch.device(device)
        self.gen = torch.Generator().manual_seed(seed)
        if frames is None:
            frames = [cast.frames(split, i) for i in range(cast.n_identities)]
            if any(len(f) == 0 for f in frames):
                raise ValueError(f"every identity needs frames in split {split!r}")
        else:
            frames = np.unique(np.asarray(frames, np.int64))
            if frames.size == 0:
                raise ValueError("no frames to draw from")
            owner = cast.frame_identity[frames]
            frames = [frames[owner == i] for i in np.unique(owner)]
        self.n_per_id = torch.tensor([len(f) for f in frames])
        self.start = torch.cumsum(torch.cat([torch.zeros(1, dtype=torch.long), self.n_per_id[:-1]]), 0)
        self.frame_table = torch.from_numpy(np.concatenate(frames))
        self.boxes = torch.from_numpy(head_boxes(cast, self.frame_table.numpy()))  # per entry of frame_table
        self.mouth_boxes = (torch.from_numpy(mouth_boxes(cast, self.frame_table.numpy(), self.boxes.numpy()))
                            if self.mouth > 0 or mark_mouth else None)
        # frames whose seg_mask shows a mouth (the others' "mouth box" is the head box)
        self.has_mouth = None if self.mouth_boxes is None else (self.mouth_boxes != self.boxes).any(-1)
        self.c2h = torch.from_numpy(cast.cam_to_head)
        self.intrinsics = torch.from_numpy(cast.intrinsics)

    def state_dict(self) -> dict:
        return {"generator": self.gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.gen.set_state(state["generator"])

    def sample(self) -> RayBatch:
        g, B, W, H = self.gen, self.B, self.cast.width, self.cast.height
        n_frames = self.frames_per_batch
        ids = torch.randint(len(self.n_per_id), (n_frames,), generator=g)
        slot = self.start[ids] + (torch.rand(n_frames, generator=g) * self.n_per_id[ids]).long().clamp_max(self.n_per_id[ids] - 1)
        ray_slot = slot[torch.randint(n_frames, (B,), generator=g)]
        box = self.boxes[ray_slot].float()  # [B, 4]
        inside = torch.rand(B, generator=g) < self.inside
        if self.mouth_boxes is not None and self.mouth > 0:
            in_mouth = torch.rand(B, generator=g) < self.mouth
            box = torch.where(in_mouth[:, None], self.mouth_boxes[ray_slot].float(), box)
            inside = inside | in_mouth
        u, v = torch.rand(B, generator=g), torch.rand(B, generator=g)
        xs = torch.where(inside, box[:, 0] + u * (box[:, 2] - box[:, 0]), u * W).floor()
        ys = torch.where(inside, box[:, 1] + v * (box[:, 3] - box[:, 1]), v * H).floor()
        # outside rays: redraw those that fell into the box (vectorised rejection, bounded)
        for _ in range(16):
            bad = ~inside & (xs >= box[:, 0]) & (xs < box[:, 2]) & (ys >= box[:, 1]) & (ys < box[:, 3])
            n = int(bad.sum())
            if n == 0:
                break
            xs[bad] = (torch.rand(n, generator=g) * W).floor()
            ys[bad] = (torch.rand(n, generator=g) * H).floor()
        xs, ys = xs.long().clamp_(0, W - 1), ys.long().clamp_(0, H - 1)
        frame = self.frame_table[ray_slot]
        if self.mouth_boxes is not None:
            mb = self.mouth_boxes[ray_slot]
            in_box = self.has_mouth[ray_slot] & (xs >= mb[:, 0]) & (xs < mb[:, 2]) & (ys >= mb[:, 1]) & (ys < mb[:, 3])
        else:
            in_box = torch.zeros(B, dtype=torch.bool)
        rgba = torch.from_numpy(self.cast.pixels(frame.numpy(), ys.numpy(), xs.numpy())).float() / 255.0
        o, d = pixel_rays(self.c2h[frame], self.intrinsics[frame], xs.float(), ys.float())
        dev = self.device
        return RayBatch(o.to(dev), d.to(dev), torch.from_numpy(self.cast.frame_identity)[frame].to(dev), frame.to(dev), rgba.to(dev), torch.stack([xs, ys], -1).to(dev), in_box.to(dev))
