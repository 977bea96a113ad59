"""The avatar: every stage of rendering a ray batch, in order.

    rays (head space) ──march──▶ packed samples (occupancy grid)
      ──embed──▶ canonical points + directions (nearest triangle of the frame's mesh)
      ──condition──▶ M(e, i) per frame (+ latent code l)
      ──field──▶ σ, rgb ──composite──▶ pixels

Per-identity state is only codes (an identity code per identity, a latent code per
frame); everything else is shared. :class:`CastInfo` is the part of the training cast a
checkpoint needs to rebuild the model (names, frame counts, canonical mesh, boxes, stats).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, RenderConfig
from ..data.face_model import MOUTH_REGIONS
from ..errors import InputError
from ..ops.composite import composite
from ..ops.embed import MeshSet, embed_points_torch
from ..ops.hashgrid import HashGridSpec
from ..ops._backend import ops_backend
from ..ops.march import march_rays
from .conditioning import Conditioning
from .field import RadianceField, positional_encoding
from .occupancy import OccupancyGrid


#: smallest expression std used for standardising; a coefficient at the floor did not vary in
#: training, so the network learned nothing about it and :meth:`Avatar.condition` zeroes it
EXPR_STD_FLOOR = 1e-3


@dataclass
class CastInfo:
    """What the model keeps of its training cast (saved in checkpoints).

    Attributes:
        names: identity names. frames_per_identity: frame counts (train + test).
        identity_roots: folders the identities were read from.
        expression_names: E names. canonical: [V, 3]. faces: [T, 3]. face_regions: [T] or None.
        head_aabb: [6] box around all training meshes (head space), margin included.
        canonical_aabb: [6] box around the canonical mesh, margin included.
        expr_mean, expr_std: [E] training-set statistics of the expression coefficients.
        expression_basis: optional [E, V, 3] (drives a mesh from expression sliders).
        identity_canonicals: optional [N, V, 3] each identity's neutral mesh (a mesh for any
            identity and expression without the dataset: canonical_i + Σ e_k basis_k).
    """

    names: list[str]
    frames_per_identity: list[int]
    identity_roots: list[str]
    expression_names: list[str]
    canonical: np.ndarray
    faces: np.ndarray
    face_regions: np.ndarray | None
    head_aabb: np.ndarray
    canonical_aabb: np.ndarray
    expr_mean: np.ndarray
    expr_std: np.ndarray
    expression_basis: np.ndarray | None = field(default=None)
    identity_canonicals: np.ndarray | None = field(default=None)

    @property
    def n_expressions(self) -> int:
        return int(self.expr_mean.shape[0])

    @property
    def frame_offset(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.frames_per_identity)]).astype(np.int64)

    def model_index(self, cast, check_frames: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Where a cast's identities and frames sit in this model (matched by name).

        The cast may hold any subset of the model's identities in any order (e.g. only the
        identity being personalised): a frame's model index — its latent-code row — is its
        identity's first model frame plus its index within the identity.

        Returns:
            (identity [N_cast] int64 model identity of each cast identity,
             frame [NF_cast] int64 model global frame of each cast frame).
        Raises:
            InputError naming the folder of an unknown identity or (``check_frames``) one whose
            frame count differs from the model's (its latent rows would not line up).
        """
        ids = []
        for d in cast.identities:
            if d.name not in self.names:
                raise InputError(d.root, f"identity {d.name!r} is not in this model (it knows {', '.join(self.names)})")
            k = self.names.index(d.name)
            if check_frames and d.n_frames != self.frames_per_identity[k]:
                raise InputError(d.root, f"{d.n_frames} frames, but the model has {self.frames_per_identity[k]} for {d.name!r} (the folder changed?)")
            ids.append(k)
        ids = np.asarray(ids, np.int64)
        return ids, (self.frame_offset[ids[cast.frame_identity]] + cast.frame_local).astype(np.int64)

    @staticmethod
    def from_cast(cast, margin: float = 0.12, max_frames: int = 512) -> "CastInfo":
        """Statistics from a :class:`~fastminerf.data.cast.Cast` (boxes from ≤ max_frames training frames)."""
        train = cast.frames("train")
        pick = train[np.linspace(0, len(train) - 1, min(len(train), max_frames)).astype(int)]
        v = cast.vertices(pick).reshape(-1, 3)
        regions = None
        if cast.vertex_regions is not None:
            r = cast.vertex_regions[cast.faces]
            regions = np.where(r[:, 1] == r[:, 2], r[:, 1], r[:, 0]).astype(np.uint8)
        e = cast.expressions[train]
        basis = next((d.expression_basis for d in cast.identities if d.expression_basis is not None), None)
        return CastInfo(
            names=cast.names,
            frames_per_identity=[d.n_frames for d in cast.identities],
            identity_roots=[str(d.root.resolve()) for d in cast.identities],
            expression_names=cast.expression_names,
            canonical=cast.canonical,
            faces=cast.faces,
            face_regions=regions,
            head_aabb=_box(v, margin),
            canonical_aabb=_box(cast.canonical, margin),
            expr_mean=e.mean(0).astype(np.float32),
            expr_std=np.maximum(e.std(0), EXPR_STD_FLOOR).astype(np.float32),
            expression_basis=None if basis is None else np.asarray(basis)[: cast.n_expressions],
            identity_canonicals=np.stack([d.canonical for d in cast.identities]).astype(np.float32),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "CastInfo":
        return CastInfo(**d)


def _box(points: np.ndarray, margin: float) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    pad = margin * (hi - lo).max()
    return np.concatenate([lo - pad, hi + pad]).astype(np.float32)


@dataclass
class FrameBatch:
    """K frames to render: geometry and conditioning.

    Attributes:
        vertices: [K, V, 3] head-space meshes. expression: [K, E] raw coefficients.
        identity: [K] int64 identity index. latent: [K, latent_dim] latent codes.
        keys: optional K cache keys for static meshes (acceleration structures are reused).
    """

    vertices: torch.Tensor
    expression: torch.Tensor
    identity: torch.Tensor
    latent: torch.Tensor
    keys: list | None = None

    def __len__(self) -> int:
        return self.vertices.shape[0]


class Avatar(nn.Module):
    """Multi-identity mesh-embedded hash-grid field.

    Args:
        model_cfg, render_cfg: configuration. info: the training cast's :class:`CastInfo`.
        backend: "torch", "cuda" or "tcnn" (resolved by ops._backend.resolve_backend). With
            "tcnn" only the hash encoding runs in tiny-cuda-nn; marching, nearest triangle
            and compositing use our kernels when they load, else the torch twins.
    """

    def __init__(self, model_cfg: ModelConfig, render_cfg: RenderConfig, info: CastInfo, backend: str = "torch"):
        super().__init__()
        mc, rc = model_cfg, render_cfg
        self.mc, self.rc, self.info, self.backend = mc, rc, info, backend
        self.ops_backend = ops_backend(backend)
        E = info.n_expressions
        d_i = mc.identity_dim or E
        self.identity_codes = nn.Embedding(len(info.names), d_i)
        nn.init.normal_(self.identity_codes.weight, std=mc.identity_init_std)
        self.latent_dim = mc.latent_dim
        n_frames = int(sum(info.frames_per_identity))
        self.latent_codes = nn.Embedding(n_frames, max(mc.latent_dim, 1))
        nn.init.zeros_(self.latent_codes.weight)
        self.conditioning = Conditioning(mc.conditioning, E, d_i, mc.rank, mc.stages, mc.cond_out_dim, max(mc.latent_dim, 1))
        cm = self.conditioning.out_dim
        color_latent = mc.latent_dim if (mc.latent_dim > 0 and not self.conditioning.uses_latent) else 0
        spec = HashGridSpec.from_finest(mc.grid_levels, mc.grid_features, mc.grid_log2_size, mc.grid_base_resolution, mc.grid_finest_resolution)
        self.field = RadianceField(spec, cm if mc.cond_density else 0, (cm + color_latent) if mc.cond_color else 0,
                                   mc.density_hidden, mc.density_layers, mc.geo_features, mc.color_hidden,
                                   mc.color_layers, mc.sh_degree, backend, mc.grid_precision, mc.mlp_precision)
        self.color_latent = color_latent
        if mc.residual_offset:
            self.residual = nn.Sequential(nn.Linear(3 + 6 * 4 + cm, 64), nn.ReLU(), nn.Linear(64, 3))
            nn.init.zeros_(self.residual[-1].weight)
            nn.init.zeros_(self.residual[-1].bias)
        self.register_buffer("canonical", torch.from_numpy(np.asarray(info.canonical, np.float32)))
        self.register_buffer("faces", torch.from_numpy(np.asarray(info.faces, np.int64)))
        regions = np.zeros(len(info.faces), np.uint8) if info.face_regions is None else np.asarray(info.face_regions)
        self.register_buffer("mouth_face", torch.from_numpy(np.isin(regions, MOUTH_REGIONS)))
        self.register_buffer("head_aabb", torch.from_numpy(np.asarray(info.head_aabb, np.float32)))
        self.register_buffer("canonical_aabb", torch.from_numpy(np.asarray(info.canonical_aabb, np.float32)))
        self.register_buffer("expr_mean", torch.from_numpy(np.asarray(info.expr_mean, np.float32)))
        self.register_buffer("expr_std", torch.from_numpy(np.asarray(info.expr_std, np.float32)))
        # coefficients that varied in training (derived, not saved); the others are zeroed after
        # standardising: a new identity or a driver using one would otherwise feed ±100s of σ in
        self.register_buffer("expr_varied", (self.expr_std > EXPR_STD_FLOOR * 1.001).float(), persistent=False)
        self.occupancy = OccupancyGrid(rc.occupancy_resolution, self.head_aabb)
        c = np.asarray(info.canonical)
        self.canonical_diag = float(np.linalg.norm(c.max(0) - c.min(0)))
        self.dt = float((self.head_aabb[3:] - self.head_aabb[:3]).norm()) / rc.march_steps

    @property
    def occupancy_sigma_threshold(self) -> float:
        """σ at which one marching step has opacity ``render.occupancy_threshold``."""
        return -float(np.log1p(-self.rc.occupancy_threshold)) / self.dt

    # ---------------------------------------------------------------- codes
    @property
    def far_distance(self) -> float | None:
        return None if self.mc.far_mode == "none" else self.mc.far_distance * self.canonical_diag

    def frame_latents(self, frames: torch.Tensor) -> torch.Tensor:
        """Latent codes [K, latent] of global training frames [K]."""
        return self.latent_codes(frames)

    def identity_latent(self, identity: int) -> torch.Tensor:
        """The latent code used for frames without their own (held-out, driven, novel):
        the mean code of the identity's training frames. [latent]"""
        off = self.info.frame_offset
        return self.latent_codes.weight[off[identity] : off[identity + 1]].mean(0)

    def condition(self, frames: FrameBatch):
        """Per-frame conditioning: (cond_density [K(+1), Cd] or None, cond_color [K, Cc] or None, m [K, Cm])."""
        e = frames.expression
        if self.mc.normalize_expressions:
            e = (e - self.expr_mean) / self.expr_std * self.expr_varied
        i = self.identity_codes(frames.identity)
        m = self.conditioning(e, i, frames.latent)
        cd = m if self.mc.cond_density else None
        if cd is not None and self.mc.cond_gate == "mouth":
            cd = torch.cat([cd, torch.ones_like(cd[:1])], 0)  # row K: INSTA's constant 1.0 slot
        cc = None
        if self.mc.cond_color:
            cc = torch.cat([m, frames.latent], -1) if self.color_latent else m
        return cd, cc, m

    # ---------------------------------------------------------------- geometry
    def mesh_set(self, frames: FrameBatch) -> MeshSet:
        nb = "cuda" if (self.ops_backend == "cuda" and frames.vertices.is_cuda) else "cpu"
        return MeshSet(frames.vertices, self.faces, frames.keys, backend=nb)

    def embed(self, x: torch.Tensor, d: torch.Tensor | None, slots: torch.Tensor, frames: FrameBatch, meshes: MeshSet):
        """Head-space samples → canonical. Returns (keep [S] bool, x_c [S', 3], d_c, face [S'])."""
        far = self.far_distance
        cutoff = self.mc.far_mode == "cutoff"
        face, dist = meshes.nearest(x, slots, max_dist=far * 1.0001 if cutoff else 1e6)
        keep = face >= 0
        if cutoff:
            keep &= dist <= far
        idx = keep.nonzero().reshape(-1)
        x, slots, face = x[idx], slots[idx], face[idx]
        d = None if d is None else d[idx]
        x_c, d_c, _ = embed_points_torch(x, d, slots, face, frames.vertices, self.canonical, self.faces, self.mc.height_scale)
        if self.mc.far_mode == "rigid":
            rigid = dist[idx] > far
            x_c = torch.where(rigid[:, None], x, x_c)
            if d is not None:
                d_c = torch.where(rigid[:, None], d, d_c)
        return keep, x_c, d_c, face

    def to_unit(self, x_c: torch.Tensor):
        """Canonical points → [0, 1]³ of the canonical box; returns (x01, inside [S] bool)."""
        lo, hi = self.canonical_aabb[:3], self.canonical_aabb[3:]
        x01 = (x_c - lo) / (hi - lo)
        inside = ((x01 >= 0) & (x01 <= 1)).all(-1)
        return x01.clamp(0, 1), inside

    def residual_offset(self, x01: torch.Tensor, m_rows: torch.Tensor) -> torch.Tensor:
        """Δx [S, 3] (canonical units) from [PE(x01), M(e,i)] per sample; |Δx| ≤ residual_max·diag."""
        h = self.residual(torch.cat([positional_encoding(x01 * 2 - 1, 4), m_rows], -1))
        return torch.tanh(h) * (self.mc.residual_max * self.canonical_diag)

    # ---------------------------------------------------------------- field at points
    def _field(self, x_c, d_c, slots, face, cd, cc, m):
        """σ, rgb, extra-loss terms of canonical samples (slots index the K frames)."""
        extra = {}
        if self.mc.residual_offset:
            x01, _ = self.to_unit(x_c)
            dx = self.residual_offset(x01, m[slots])
            extra["offset_sq"] = (dx / (self.mc.residual_max * self.canonical_diag)).pow(2).sum(-1)
            x_c = x_c + dx
        x01, inside = self.to_unit(x_c)
        rows_d = slots
        if cd is not None and self.mc.cond_gate == "mouth":
            rows_d = torch.where(self.mouth_face[face], slots, torch.full_like(slots, cd.shape[0] - 1))
        if d_c is None:
            sigma, _ = self.field.density(x01, cd, rows_d)
            return sigma * inside, None, extra
        sigma, rgb = self.field(x01, d_c, cd, rows_d, cc, slots)
        return sigma * inside, rgb, extra

    def density_at(self, points: torch.Tensor, slots: torch.Tensor, frames: FrameBatch) -> torch.Tensor:
        """σ [N] at head-space points [N, 3] of frames[slots] (0 where cut off). For the
        occupancy grid; no gradients needed by callers."""
        cd, cc, m = self.condition(frames)
        keep, x_c, _, face = self.embed(points, None, slots, frames, self.mesh_set(frames))
        sigma = torch.zeros(points.shape[0], device=points.device)
        if x_c.shape[0]:
            s, _, _ = self._field(x_c, None, slots[keep], face, cd, cc, m)
            sigma[keep] = s
        return sigma

    # ---------------------------------------------------------------- rays
    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor, frames: FrameBatch,
                    background: torch.Tensor | None = None) -> dict:
        """Render rays.

        Args:
            origins, dirs: [R, 3] head-space rays. slots: [R] frame of each ray (index into frames).
            frames: the K frames. background: [R, 3], [3] or None (black).
        Returns:
            dict: rgb [R, 3], opacity [R], depth [R], n_samples (int), and per-sample extras
            for losses (``offset_sq`` when the residual offset is on).
        """
        R = origins.shape[0]
        cd, cc, m = self.condition(frames)
        meshes = self.mesh_set(frames)
        ray_idx, t0, t1 = march_rays(origins, dirs, self.head_aabb, self.occupancy.bitfield, self.dt, backend=self.ops_backend)
        if self.rc.mesh_depth_cut and self.far_distance is not None and ray_idx.numel():
            # mesh-guided early termination: nothing is visible deeper than the far band
            # behind the first hit of the ray on its frame's (closed) head mesh
            t_hit = meshes.first_hit(origins, dirs, slots)
            front = t0 <= t_hit[ray_idx] + self.far_distance
            ray_idx, t0, t1 = ray_idx[front], t0[front], t1[front]

        def shade(sel: torch.Tensor | None):
            """σ, rgb of the samples ``sel`` (all when None): (ray_idx, t0, t1, σ, rgb, extra)."""
            r, a, b = (ray_idx, t0, t1) if sel is None else (ray_idx[sel], t0[sel], t1[sel])
            x = origins[r] + dirs[r] * (0.5 * (a + b))[:, None]
            s_slot = slots[r]
            keep, x_c, d_c, face = self.embed(x, dirs[r], s_slot, frames, meshes)
            sigma, rgb, extra = self._field(x_c, d_c, s_slot[keep], face, cd, cc, m)
            return r[keep], a[keep], b[keep], sigma, rgb, extra

        if torch.is_grad_enabled() or self.rc.early_stop_transmittance <= 0 or ray_idx.numel() == 0:
            r, a, b, sigma, rgb, extra = shade(None)
            out = composite(sigma, rgb, a, b, r, R, background, backend=self.ops_backend)
            out["n_samples"] = int(r.numel())
            out.update(extra)
            return out
        return self._render_early_stop(ray_idx, R, shade, background)

    def _render_early_stop(self, ray_idx: torch.Tensor, R: int, shade, background) -> dict:
        """Inference with early ray termination: samples are shaded in blocks of
        ``render.early_stop_block`` along each ray (vectorised over rays), and a ray stops
        once its transmittance falls below ``render.early_stop_transmittance``. Same image as
        the full composite up to that transmittance."""
        dev = ray_idx.device
        first = torch.ones_like(ray_idx, dtype=torch.bool)
        first[1:] = ray_idx[1:] != ray_idx[:-1]
        pos = torch.arange(ray_idx.numel(), device=dev)
        k = pos - torch.cummax(torch.where(first, pos, 0), 0).values  # sample's index along its ray
        block = k // self.rc.early_stop_block
        T = torch.ones(R, device=dev)
        rgb = torch.zeros(R, 3, device=dev)
        depth = torch.zeros(R, device=dev)
        n = 0
        for j in range(int(block.max()) + 1):
            sel = ((block == j) & (T[ray_idx] > self.rc.early_stop_transmittance)).nonzero().reshape(-1)
            if sel.numel() == 0:
                continue
            r, a, b, sigma, c, _ = shade(sel)
            part = composite(sigma, c, a, b, r, R, None, backend=self.ops_backend)
            rgb += T[:, None] * part["rgb"]
            depth += T * part["depth"]
            T = T * (1 - part["opacity"])
            n += int(r.numel())
        if background is not None:
            rgb = rgb + T[:, None] * background
        return {"rgb": rgb, "opacity": 1 - T, "depth": depth, "n_samples": n}
