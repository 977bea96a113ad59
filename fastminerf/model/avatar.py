"""The avatar: every stage of rendering a ray batch, in order, and its side of training.

    rays (head space) ──march──▶ packed samples (occupancy grid)
      ──embed──▶ canonical points + directions (nearest triangle of the frame's mesh)
      ──condition──▶ M(e, i) per frame (+ latent code l)
      ──field──▶ σ, rgb ──composite──▶ pixels

Per-identity state is only codes (an identity code per identity, a latent code per
frame); everything else is shared. For training the avatar states what a generic trainer
needs (nerfstudio's model contract): its parameter groups (:meth:`Avatar.optimizer_groups`,
with freezing), its loss terms (:meth:`Avatar.loss_terms`) and its per-step callbacks
(:meth:`Avatar.training_callbacks`: the occupancy grid schedules its own refresh).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, RenderConfig, TrainConfig
from ..data.regions import MOUTH_REGIONS
from ..ops._backend import ops_backend
from ..ops.composite import composite
from ..ops.embed import MeshSet, embed_points_torch
from ..ops.hashgrid import HashGridSpec
from ..ops.march import march_rays
from .cast_info import EXPR_STD_FLOOR, CastInfo
from .cavity import CavityLevels, MouthCavity, find_mouth_loop
from .conditioning import build_conditioning
from .field import RadianceField, offset_mlp, positional_encoding
from .frames import FrameBatch
from .lips import LIP_PRIOR_STEPS, lip_face_mask, lip_front
from .losses import code_norms, photometric
from .occupancy import OccupancyGrid

#: parameter groups of an avatar (what ``--freeze`` and fine-tuning scopes name)
GROUPS = ("grid", "mlp", "conditioning", "identity", "latent")
#: optimizer groups (one learning rate each) → the parameter groups they hold
OPTIMIZER_GROUPS = {"grid": ("grid",), "mlp": ("conditioning", "mlp"), "codes": ("identity", "latent")}


@dataclass
class FrameConditioning:
    """The conditioning of K frames, as the field consumes it.

    Attributes:
        density: [K, Cd] rows for the density MLP (plus a last row of 1.0 when INSTA's mouth
            gating is on: the slot of samples outside the mouth), or None.
        color: [K, Cc] rows for the colour MLP ([M(e,i), l]), or None.
        module: [K, Cm] M(e, i) itself (drives the residual offset).
        mouth_rows: with a FrameBatch's ``mouth_expression``, the first rows of ``density`` and
            ``color`` that hold the mouth's conditioning (frame k's at offset + k); else None.
    """

    density: torch.Tensor | None
    color: torch.Tensor | None
    module: torch.Tensor
    mouth_rows: tuple[int, int] | None = None


@dataclass
class TrainingContext:
    """What a training callback may use.

    Attributes:
        step: the step just taken. generator: the run's generator (CPU; resuming stays exact).
        sample_frames: n → FrameBatch of up to n random training frames (distinct).
    """

    step: int
    generator: torch.Generator
    sample_frames: Callable[[int], FrameBatch]


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
        self.conditioning = build_conditioning(mc.conditioning, E, d_i, rank=mc.rank, stages=mc.stages,
                                               out_dim=mc.cond_out_dim, latent_dim=max(mc.latent_dim, 1))
        cm = self.conditioning.out_dim
        color_latent = self.color_latent = mc.latent_dim if (mc.latent_dim > 0 and not self.conditioning.uses_latent) else 0
        spec = HashGridSpec.from_finest(mc.grid_levels, mc.grid_features, mc.grid_log2_size, mc.grid_base_resolution,
                                        mc.grid_finest_resolution)
        self.field = RadianceField(
            spec, cond_density_dim=cm if mc.cond_density else 0, cond_color_dim=(cm + color_latent) if mc.cond_color else 0,
            density_hidden=mc.density_hidden, density_layers=mc.density_layers, geo_features=mc.geo_features,
            color_hidden=mc.color_hidden, color_layers=mc.color_layers, sh_degree=mc.sh_degree, backend=backend,
            grid_precision=mc.grid_precision, mlp_precision=mc.mlp_precision)
        if mc.residual_offset:
            self.residual = offset_mlp(3 + 6 * 4 + cm)
        canonical = np.asarray(info.canonical, np.float32)
        if mc.canonical_mouth == "open" and info.mouth_open is not None:
            canonical = canonical + np.asarray(info.mouth_open, np.float32)
        self.register_buffer("canonical", torch.from_numpy(canonical))
        self.register_buffer("faces", torch.from_numpy(np.asarray(info.faces, np.int64)))
        regions = np.zeros(len(info.faces), np.uint8) if info.face_regions is None else np.asarray(info.face_regions)
        self.register_buffer("mouth_face", torch.from_numpy(np.isin(regions, MOUTH_REGIONS)))
        loop = find_mouth_loop(canonical, np.asarray(info.faces), info.face_regions) if mc.mouth_cavity else None
        self.cavity = None if loop is None else MouthCavity(self.canonical, self.faces, loop, mc.mouth_cavity_depth)
        self.cavity_levels = None if mc.cavity_levels is None else CavityLevels(mc.cavity_levels, spec.n_levels, spec.n_features)
        # the meshes the embedding uses: the tracked ones, plus the cavity when there is one (not saved)
        self.register_buffer("mouth_face_all", self.mouth_face if self.cavity is None else
                             self.cavity.face_mask(len(info.faces)) | torch.cat([self.mouth_face, torch.zeros(
                                 self.cavity.n_faces, dtype=torch.bool)]), persistent=False)
        self.register_buffer("lip_face_all", lip_face_mask(info, regions, None if self.cavity is None else self.cavity.n_faces),
                             persistent=False)
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

    def identity_latents(self, identities: torch.Tensor) -> torch.Tensor:
        """:meth:`identity_latent` of each of identities [K] (int64) → [K, latent]."""
        uniq, inv = identities.unique(return_inverse=True)  # a handful of identities per batch
        return torch.stack([self.identity_latent(int(i)) for i in uniq.tolist()])[inv]

    def condition(self, frames: FrameBatch) -> FrameConditioning:
        """Per-frame conditioning of ``frames`` (expressions standardised with the training statistics)."""
        i = self.identity_codes(frames.identity)
        std = self.expr_std if self.mc.normalize_expressions else None
        e = [x if std is None else (x - self.expr_mean) / std * self.expr_varied for x in (frames.expression, frames.mouth_expression) if x is not None]
        m = [self.conditioning(x, i, frames.latent) for x in e]  # [M(e,i)] or [M(e,i), M(e_mouth,i)]
        density = m[0] if self.mc.cond_density else None
        if density is not None and self.mc.cond_gate == "mouth":
            density = torch.cat([density, torch.ones_like(density[:1])], 0)  # row K: INSTA's constant 1.0 slot
        color = None if not self.mc.cond_color else torch.cat([m[0], frames.latent], -1) if self.color_latent else m[0]
        if len(m) == 1:
            return FrameConditioning(density, color, m[0])
        offsets = (0 if density is None else density.shape[0], 0 if color is None else color.shape[0])
        density = None if density is None else torch.cat([density, m[1]], 0)
        color = None if color is None else torch.cat([color, torch.cat([m[1], frames.latent], -1) if self.color_latent else m[1]], 0)
        return FrameConditioning(density, color, m[0], offsets)

    # ---------------------------------------------------------------- geometry
    def mesh_set(self, frames: FrameBatch) -> MeshSet:
        """The frames' meshes [K, V(+C), 3] (with the mouth cavity when on) and their search structure."""
        search = "cuda" if (self.ops_backend == "cuda" and frames.vertices.is_cuda) else "warp"
        if self.cavity is None:
            return MeshSet(frames.vertices, self.faces, frames.keys, search=search)
        keys = None if frames.keys is None else [(k, "cavity") for k in frames.keys]
        return MeshSet(self.cavity.extend(frames.vertices), self.cavity.faces_all, keys, search=search)

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
        canonical = self.canonical if self.cavity is None else self.cavity.canonical_all
        x_c, d_c, _ = embed_points_torch(x, d, slots, face, meshes.vertices, canonical, meshes.faces, self.mc.height_scale)
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
    def _field(self, x_c, d_c, slots, face, cond: FrameConditioning):
        """σ, rgb, extra-loss terms of canonical samples (slots index the K frames)."""
        extra = {}
        if self.mc.residual_offset:
            x01, _ = self.to_unit(x_c)
            dx = self.residual_offset(x01, cond.module[slots])
            extra["offset_sq"] = (dx / (self.mc.residual_max * self.canonical_diag)).pow(2).sum(-1)
            x_c = x_c + dx
        x01, inside = self.to_unit(x_c)
        rows_d, rows_c, interior = slots, slots, face >= self.faces.shape[0]  # cavity faces come after the mesh's
        if cond.density is not None and self.mc.cond_gate == "mouth":
            rows_d = torch.where(self.mouth_face_all[face], slots, torch.full_like(slots, len(cond.module)))
        if cond.mouth_rows is not None:  # cavity samples read the rows of the mouth's own expression
            rows_d, rows_c = (torch.where(interior, slots + off, r) for off, r in zip(cond.mouth_rows, (rows_d, rows_c)))
        fs = None if self.cavity_levels is None else self.cavity_levels.feature_scale(interior)
        if d_c is None:
            sigma, _ = self.field.density(x01, cond.density, rows_d, fs)
            return sigma * inside, None, extra
        sigma, rgb = self.field(x01, d_c, cond.density, rows_d, cond.color, rows_c, fs)
        return sigma * inside, rgb, extra

    def density_at(self, points: torch.Tensor, slots: torch.Tensor, frames: FrameBatch) -> torch.Tensor:
        """σ [N] at head-space points [N, 3] of frames[slots] (0 where cut off). For the
        occupancy grid; no gradients needed by callers."""
        cond = self.condition(frames)
        keep, x_c, _, face = self.embed(points, None, slots, frames, self.mesh_set(frames))
        sigma = torch.zeros(points.shape[0], device=points.device)
        if x_c.shape[0]:
            s, _, _ = self._field(x_c, None, slots[keep], face, cond)
            sigma[keep] = s
        return sigma

    # ---------------------------------------------------------------- rays
    def render_rays(self, origins: torch.Tensor, dirs: torch.Tensor, slots: torch.Tensor, frames: FrameBatch,
                    background: torch.Tensor | None = None, lip_prior: bool = False) -> dict:
        """Render rays.

        Args:
            origins, dirs: [R, 3] head-space rays. slots: [R] frame of each ray (index into frames).
            frames: the K frames. background: [R, 3], [3] or None (black).
            lip_prior: also return ``lip_ray`` [R] and ``lip_front`` [R] (:func:`.lips.lip_front`).
        Returns:
            dict: rgb [R, 3], opacity [R], depth [R], n_samples (int), and per-sample extras
            for losses (``offset_sq`` when the residual offset is on).
        """
        R = origins.shape[0]
        cond = self.condition(frames)
        meshes = self.mesh_set(frames)
        ray_idx, t0, t1 = march_rays(origins, dirs, self.head_aabb, self.occupancy.bitfield, self.dt, backend=self.ops_backend)
        t_hit = None
        if (lip_prior or (self.rc.mesh_depth_cut and self.far_distance is not None)) and ray_idx.numel():
            t_hit = meshes.first_hit(origins, dirs, slots)
        if self.rc.mesh_depth_cut and self.far_distance is not None and ray_idx.numel():
            # mesh-guided early termination: nothing is visible deeper than the far band
            # behind the first hit of the ray on its frame's (closed) head mesh
            front = t0 <= t_hit[ray_idx] + self.far_distance
            ray_idx, t0, t1 = ray_idx[front], t0[front], t1[front]

        def shade(sel: torch.Tensor | None):
            """σ, rgb of the samples ``sel`` (all when None): (ray_idx, t0, t1, σ, rgb, extra)."""
            r, a, b = (ray_idx, t0, t1) if sel is None else (ray_idx[sel], t0[sel], t1[sel])
            x = origins[r] + dirs[r] * (0.5 * (a + b))[:, None]
            s_slot = slots[r]
            keep, x_c, d_c, face = self.embed(x, dirs[r], s_slot, frames, meshes)
            sigma, rgb, extra = self._field(x_c, d_c, s_slot[keep], face, cond)
            return r[keep], a[keep], b[keep], sigma, rgb, extra

        if torch.is_grad_enabled() or self.rc.early_stop_transmittance <= 0 or ray_idx.numel() == 0:
            r, a, b, sigma, rgb, extra = shade(None)
            out = composite(sigma, rgb, a, b, r, R, background, backend=self.ops_backend)
            out["n_samples"] = int(r.numel())
            out.update(extra)
            if lip_prior:
                out.update(lip_front(origins, dirs, slots, meshes, t_hit, r, 0.5 * (a + b), out["weights"],
                                     self.lip_face_all, LIP_PRIOR_STEPS * self.dt))
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

    # ---------------------------------------------------------------- training contract
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """{group: parameters} for every name of :data:`GROUPS` (module order within a group)."""
        groups: dict[str, list[nn.Parameter]] = {g: [] for g in GROUPS}
        prefixes = (("field.grid", "grid"), ("identity_codes", "identity"), ("latent_codes", "latent"), ("conditioning", "conditioning"))
        for name, p in self.named_parameters():
            groups[next((g for pre, g in prefixes if name.startswith(pre)), "mlp")].append(p)
        return groups

    def optimizer_groups(self, frozen: tuple[str, ...] = ()) -> list[dict]:
        """Parameter groups for an optimizer, one per learning rate ({"name": "grid" | "mlp" |
        "codes", "params": [...]}, empty ones left out), without the groups named in
        ``frozen`` (names of :data:`GROUPS`), which are also set to need no gradients."""
        unknown = set(frozen) - set(GROUPS)
        if unknown:
            raise ValueError(f"unknown parameter groups {sorted(unknown)}; choose from {', '.join(GROUPS)}")
        groups = self.parameter_groups()
        for g, params in groups.items():
            for p in params:
                p.requires_grad_(g not in frozen)
        out = []
        for name, members in OPTIMIZER_GROUPS.items():
            params = [p for g in members if g not in frozen for p in groups[g]]
            if params:
                out.append({"name": name, "params": params})
        return out

    def loss_terms(self, out: dict, target_rgb: torch.Tensor, target_alpha: torch.Tensor, frames: FrameBatch,
                   tc: TrainConfig, in_mouth: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The weighted loss terms of one step (their sum is the loss).

        Args:
            out: :meth:`render_rays` output. target_rgb: [R, 3] on the step's background.
            target_alpha: [R] ground-truth alpha. frames: the step's frames. tc: weights.
            in_mouth: optional [R] bool, rays inside the ground truth's mouth box (their
                photometric error is weighted by ``train.mouth_weight``).
        Returns:
            {"photometric", "identity"} always; "latent" with latent codes, "alpha" with
            ``train.alpha_weight`` > 0, "offset" with the residual offset, "lip_surface" with
            ``train.lip_surface_weight`` > 0 (when :meth:`render_rays` ran with ``lip_prior``).
        """
        weight = None
        if in_mouth is not None and tc.mouth_weight != 1.0:
            weight = 1.0 + (tc.mouth_weight - 1.0) * in_mouth.to(target_rgb.dtype)
        terms = {"photometric": photometric(out["rgb"], target_rgb, tc.loss, tc.huber_delta, weight)}
        if tc.alpha_weight > 0:
            terms["alpha"] = tc.alpha_weight * (out["opacity"] - target_alpha).pow(2).mean()
        if self.latent_dim > 0:
            terms["latent"] = tc.latent_reg * code_norms(frames.latent)
        terms["identity"] = tc.identity_reg * code_norms(self.identity_codes(frames.identity))
        if "offset_sq" in out and out["offset_sq"].numel():
            terms["offset"] = self.mc.residual_weight * out["offset_sq"].mean()
        if tc.lip_surface_weight > 0 and "lip_front" in out:
            terms["lip_surface"] = tc.lip_surface_weight * out["lip_front"].sum() / out["lip_ray"].sum().clamp_min(1)
        return terms

    def training_callbacks(self, refresh_occupancy: bool = True) -> list[Callable[[TrainingContext], None]]:
        """Callbacks the trainer calls after every step (each decides itself whether it is due)."""
        return [self.refresh_occupancy] if refresh_occupancy else []

    @torch.no_grad()
    def refresh_occupancy(self, ctx: TrainingContext) -> None:
        """Refresh random occupancy cells through the meshes of a few random training frames,
        when :meth:`OccupancyGrid.due`."""
        if not self.occupancy.due(ctx.step, self.rc.occupancy_update_every):
            return
        frames = ctx.sample_frames(8)
        occ = self.occupancy
        n = max(4096, occ.candidates.shape[0] // 8)

        def density(points):
            slots = torch.randint(len(frames), (points.shape[0],), generator=ctx.generator).to(points.device)
            return self.density_at(points, slots, frames)

        occ.update(density, n, self.rc.occupancy_decay, self.occupancy_sigma_threshold, ctx.generator)

    @torch.no_grad()
    def init_occupancy(self, vertices: torch.Tensor) -> None:
        """Seed the occupancy grid around training meshes: vertices [N, 3] or per-frame meshes
        [K, V, 3] (head space; these also seed the mouth cavity's cells when it is on)."""
        vertices = vertices.to(self.head_aabb.device)
        if vertices.dim() == 3:
            vertices = (vertices if self.cavity is None else self.cavity.extend(vertices)).reshape(-1, 3)
        self.occupancy.init_from_meshes(vertices, self.far_distance,
                                        self.rc.occupancy_init_band * self.canonical_diag,
                                        init_density=2 * self.occupancy_sigma_threshold)
