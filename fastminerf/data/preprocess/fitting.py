"""Fit ICT-FaceKit to 2D landmarks of a whole clip at once (robust least squares, torch).

Unknowns (all frames in one batch, F frames, L landmarks):
    identity  [Ki]     shared by the clip, Gaussian prior (ICT modes are unit-variance PCA)
    expression [F, E]  the 53 ICT blendshapes, kept in [0, 1] (projected after each step)
    rotation  [F, 3]   axis-angle ω, head-to-camera R = R0 · exp(ω), R0 = diag(1, -1, -1)
                       (head +y up / +z out of the face → OpenCV camera y down / z forward)
    translation [F, 3] metres, camera space
    focal     scalar   pixels, fx = fy, principal point fixed at the image centre

Loss: pseudo-Huber on the landmark reprojection error in units of the face height, per
landmark weights from the correspondence table; first differences of expressions and
second differences of poses over time (temporal smoothing); priors on identity,
expressions (L1: blendshapes are sparse) and focal. Adam with a cosine schedule, two
stages: rigid + focal first, then everything (≈ 30 ms per step for 350 frames on one core).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

R0 = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


@dataclass
class FitConfig:
    """Weights and schedule of :func:`fit_clip` (defaults tuned on the 12 test clips)."""

    rigid_steps: int = 150
    steps: int = 400
    lr: float = 0.03
    lbfgs_steps: int = 60        # final L-BFGS iterations (the focal/depth/identity valley is slow for Adam)
    threads: int = 1             # torch CPU threads (small ops: more threads only add overhead)
    huber: float = 0.01          # pseudo-Huber knee, in face heights
    w_identity: float = 2e-5     # ||identity||² (per coefficient, unit-variance modes)
    w_expression: float = 2e-4   # Σ expression (L1 on [0, 1] coefficients)
    w_smooth_exp: float = 2e-3   # Σ ||e_t − e_{t−1}||²  (scaled by fps/30)
    w_smooth_rot: float = 5e-1   # Σ ||ω_{t+1} − 2ω_t + ω_{t−1}||²
    w_smooth_trans: float = 5e1  # Σ ||t_{t+1} − 2t_t + t_{t−1}||² (metres)
    w_focal: float = 1e-3        # (log f − log f0)²
    w_init_exp: float = 0.0      # ||e − e_init||² toward tracker scores (0 = init only)


@dataclass
class FitResult:
    """identity [Ki], expression [F, E], rotation [F, 3, 3] and translation [F, 3]
    (head → camera, OpenCV axes), focal (px), principal point (cx, cy),
    reprojection [F, L, 2] projected landmarks (px), error_px [F] mean landmark error."""

    identity: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    translation: np.ndarray
    focal: float
    principal: tuple[float, float]
    projected: np.ndarray
    error_px: np.ndarray

    def head_pose(self) -> np.ndarray:
        """[F, 4, 4] head-to-camera (= head-to-world with camera = world)."""
        F = len(self.rotation)
        m = np.tile(np.eye(4, dtype=np.float32), (F, 1, 1))
        m[:, :3, :3] = self.rotation
        m[:, :3, 3] = self.translation
        return m


def axis_angle_to_matrix(w: torch.Tensor) -> torch.Tensor:
    """Rodrigues: [..., 3] axis-angle → [..., 3, 3] rotation (smooth at 0)."""
    theta2 = (w * w).sum(-1, keepdim=True)[..., None]  # [..., 1, 1]
    theta = torch.sqrt(theta2 + 1e-12)
    x, y, z = w.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(w.shape[:-1] + (3, 3))
    a = torch.sin(theta) / theta
    b = (1 - torch.cos(theta)) / (theta2 + 1e-12)
    b = torch.where(theta2 < 1e-8, 0.5 - theta2 / 24, b)
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(K)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: np.ndarray) -> np.ndarray:
    """[..., 3, 3] rotation → [..., 3] axis-angle (angles < π)."""
    R = np.asarray(R, np.float64)
    cos = np.clip((np.trace(R, axis1=-2, axis2=-1) - 1) / 2, -1, 1)
    theta = np.arccos(cos)
    v = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], -1)
    s = np.sin(theta)[..., None]
    return np.where(s > 1e-6, v * theta[..., None] / (2 * np.where(s > 1e-6, s, 1)), 0.5 * v)


def project(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor, f: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """points [F, L, 3] head space, R [F, 3, 3], t [F, 3] → [F, L, 2] pixels."""
    cam = points @ R.transpose(1, 2) + t[:, None]
    z = cam[..., 2:].clamp_min(1e-3)
    return f * cam[..., :2] / z + c


class ClipObjective:
    """The clip's unknowns (torch leaves) and its loss; see the module docstring.

    Built by :func:`fit_clip`; ``forward()`` gives the projected landmarks [F, L, 2].
    """

    def __init__(self, landmarks, valid, weights, template, identity_basis, expression_basis, image_size,
                 fps, cfg: FitConfig, init_expression=None, init_rotation=None, focal_init=None, identity=None):
        dt = torch.float32
        F, L = landmarks.shape[:2]
        W, H = image_size
        self.F, self.L, self.cfg = F, L, cfg
        self.lm = torch.as_tensor(np.nan_to_num(np.asarray(landmarks, np.float32)[..., :2]))  # [F, L, 2]
        valid_t = torch.as_tensor(np.asarray(valid, bool)).to(dt)
        self.w = torch.as_tensor(np.asarray(weights, np.float32))[None] * valid_t[:, None]  # [F, L]
        self.Tm = torch.as_tensor(template, dtype=dt).reshape(1, -1)  # [1, L*3]
        self.Bi = torch.as_tensor(identity_basis, dtype=dt).reshape(len(identity_basis), -1)  # [Ki, L*3]
        self.Be = torch.as_tensor(expression_basis, dtype=dt).reshape(len(expression_basis), -1)  # [E, L*3]
        self.c = torch.tensor([W / 2.0, H / 2.0], dtype=dt)
        # the unit of the error: the median vertical landmark spread (≈ face height) in pixels
        spread = np.nanmax(landmarks[..., 1], 1) - np.nanmin(landmarks[..., 1], 1)
        self.scale = float(np.nanmedian(spread[valid])) if valid.any() else float(H)
        self.log_f0 = math.log(float(focal_init or 1.5 * max(W, H)))
        self.tscale = 30.0 / max(fps, 1.0)  # smoothing terms are per 1/30 s

        rot0 = np.zeros((F, 3), np.float32) if init_rotation is None else \
            matrix_to_axis_angle(np.einsum("ij,fjk->fik", R0.numpy().T, init_rotation)).astype(np.float32)
        e0 = np.zeros((F, self.Be.shape[0]), np.float32) if init_expression is None else np.clip(init_expression, 0, 1)
        self.e_init = torch.as_tensor(np.nan_to_num(e0), dtype=dt)
        self.fixed_identity = identity is not None
        self.identity = torch.as_tensor(identity, dtype=dt) if identity is not None else \
            torch.zeros(self.Bi.shape[0], dtype=dt, requires_grad=True)
        self.expression = self.e_init.clone().requires_grad_(True)
        self.rotation = torch.as_tensor(rot0, dtype=dt).requires_grad_(True)
        self.translation = torch.as_tensor(
            _initial_translation(landmarks, valid, template, math.exp(self.log_f0), self.scale, W, H), dtype=dt
        ).requires_grad_(True)
        self.log_focal = torch.tensor(self.log_f0, dtype=dt, requires_grad=True)

    def rigid_params(self) -> list[torch.Tensor]:
        return [self.rotation, self.translation, self.log_focal]

    def all_params(self) -> list[torch.Tensor]:
        return self.rigid_params() + [self.expression] + ([] if self.fixed_identity else [self.identity])

    def rotations(self) -> torch.Tensor:
        """[F, 3, 3] head-to-camera rotations."""
        return R0 @ axis_angle_to_matrix(self.rotation)

    def forward(self) -> torch.Tensor:
        """[F, L, 2] projected model landmarks (pixels)."""
        e = self.expression.clamp(0.0, 1.0)  # a no-op after Adam's projection; keeps L-BFGS in range
        pts = (self.Tm + self.identity[None] @ self.Bi + e @ self.Be).reshape(self.F, self.L, 3)
        return project(pts, self.rotations(), self.translation, torch.exp(self.log_focal), self.c)

    def loss(self, full: bool) -> torch.Tensor:
        """Data + smoothing + priors; ``full=False`` leaves out the shape terms (rigid stage)."""
        cfg, ts = self.cfg, self.tscale
        r = ((self.forward() - self.lm) ** 2).sum(-1) / self.scale ** 2  # [F, L] squared error, face heights
        d = cfg.huber
        data = (self.w * d * d * (torch.sqrt(1 + r / (d * d)) - 1)).sum() / self.w.sum().clamp_min(1e-6)
        loss = 1e3 * data + cfg.w_focal * (self.log_focal - self.log_f0) ** 2
        if self.F > 2:
            loss = loss + cfg.w_smooth_rot / ts ** 2 * _second_diff(self.rotation)
            loss = loss + cfg.w_smooth_trans / ts ** 2 * _second_diff(self.translation)
        if full:
            loss = loss + cfg.w_identity * (self.identity ** 2).sum()
            loss = loss + cfg.w_expression * self.expression.sum(-1).mean()
            if self.F > 1:
                loss = loss + cfg.w_smooth_exp / ts * ((self.expression[1:] - self.expression[:-1]) ** 2).sum(-1).mean()
            if cfg.w_init_exp > 0:
                loss = loss + cfg.w_init_exp * ((self.expression - self.e_init) ** 2).sum(-1).mean()
        return loss

    def project_expressions(self) -> None:
        with torch.no_grad():
            self.expression.clamp_(0.0, 1.0)


def _second_diff(x: torch.Tensor) -> torch.Tensor:
    """mean over t of ||x[t+1] − 2 x[t] + x[t−1]||², x [F, D]."""
    return ((x[2:] - 2 * x[1:-1] + x[:-2]) ** 2).sum(-1).mean()


def _initial_translation(landmarks, valid, template, focal, scale, W, H) -> np.ndarray:
    """[F, 3] camera-space translations: depth from the face size, x/y from the landmark centroid."""
    F = landmarks.shape[0]
    depth = focal * float(np.ptp(template[:, 1])) / max(scale, 1.0)
    cen = _fill(np.where(valid[:, None], np.nanmean(landmarks[..., :2], 1), np.nan), valid)
    mc = template.mean(0)  # head-space centre; R0 flips y and z
    return np.stack([(cen[:, 0] - W / 2) * depth / focal - mc[0],
                     (cen[:, 1] - H / 2) * depth / focal + mc[1],
                     np.full(F, depth + mc[2])], 1).astype(np.float32)


def _adam(obj: ClipObjective, params, steps: int, full: bool, lr: float) -> None:
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1), eta_min=lr * 0.05)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        obj.loss(full).backward()
        opt.step()
        sched.step()
        obj.project_expressions()


def _lbfgs(obj: ClipObjective, params, steps: int) -> None:
    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-12, tolerance_change=1e-14)

    def closure():
        opt.zero_grad(set_to_none=True)
        loss = obj.loss(True)
        loss.backward()
        return loss

    opt.step(closure)
    obj.project_expressions()


def fit_clip(
    landmarks: np.ndarray,
    valid: np.ndarray,
    weights: np.ndarray,
    template: np.ndarray,
    identity_basis: np.ndarray,
    expression_basis: np.ndarray,
    image_size: tuple[int, int],
    fps: float = 30.0,
    init_expression: np.ndarray | None = None,
    init_rotation: np.ndarray | None = None,
    focal_init: float | None = None,
    config: FitConfig | None = None,
    identity: np.ndarray | None = None,
) -> FitResult:
    """Fit the model to a clip.

    Args:
        landmarks: [F, L, 2] pixels (NaN allowed where ``valid`` is False).
        valid: [F] bool, frames with landmarks (others follow from temporal smoothing).
        weights: [L] per-landmark weights (0 = unused).
        template: [L, 3] model vertices at the landmarks (metres, head space).
        identity_basis: [Ki, L, 3]; expression_basis: [E, L, 3] at the landmarks.
        image_size: (W, H) of the landmark image; the principal point is its centre.
        fps: frame rate (scales the temporal weights to per-second rates).
        init_expression: optional [F, E] in [0, 1] (e.g. MediaPipe scores mapped to ICT).
        init_rotation: optional [F, 3, 3] head-to-camera rotations to start from.
        focal_init: starting (and prior) focal in pixels; default 1.5·max(W, H).
        identity: optional [Ki] fixed identity (then it is not optimised).
    Returns:
        FitResult.
    """
    cfg = config or FitConfig()
    obj = ClipObjective(landmarks, valid, weights, template, identity_basis, expression_basis, image_size, fps, cfg,
                        init_expression, init_rotation, focal_init, identity)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        _adam(obj, obj.rigid_params(), cfg.rigid_steps, False, cfg.lr)
        _adam(obj, obj.all_params(), cfg.steps, True, cfg.lr)
        if cfg.lbfgs_steps > 0:
            _lbfgs(obj, obj.all_params(), cfg.lbfgs_steps)
    finally:
        torch.set_num_threads(threads)

    with torch.no_grad():
        proj = obj.forward()
        err = torch.linalg.norm(proj - obj.lm, dim=-1)  # [F, L]
        used = torch.as_tensor(np.asarray(weights) > 0)
        err_f = err[:, used].mean(1).numpy()
        R = obj.rotations().numpy()
    W, H = image_size
    return FitResult(
        identity=obj.identity.detach().numpy().astype(np.float32),
        expression=obj.expression.detach().numpy().astype(np.float32),
        rotation=R.astype(np.float32),
        translation=obj.translation.detach().numpy().astype(np.float32),
        focal=float(torch.exp(obj.log_focal.detach())),
        principal=(W / 2.0, H / 2.0),
        projected=proj.numpy().astype(np.float32),
        error_px=np.where(valid, err_f, np.nan).astype(np.float32),
    )


def _fill(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """[F, D] rows where ``valid`` is False filled by linear interpolation over time."""
    idx = np.flatnonzero(valid)
    t = np.arange(len(x))
    return np.stack([np.interp(t, idx, x[idx, j]) for j in range(x.shape[1])], 1)
