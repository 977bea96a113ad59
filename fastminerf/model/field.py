"""The radiance field: hash grid + density MLP + colour MLP, conditioned per frame.

    features = HashGrid(x_c)                                   [S, L·F]
    h        = MLP_σ(features ⊕ cond_σ)  → σ = trunc_exp(h₀), geo = h₁..                (density)
    rgb      = sigmoid(MLP_c(geo ⊕ SH(d_c) ⊕ cond_c))                                  (colour)

``⊕ cond`` is a concatenation at the MLP input. The conditioning is per *frame* (K rows)
while the field runs per *sample* (S rows), so the first layer is split: its conditioning
part is applied to the K frame rows once and gathered per sample (same maths as the
concatenation, far fewer flops). Rows of ``cond`` can be chosen per sample (``cond_rows``),
which is how INSTA's mouth-only gating picks a constant row outside the mouth.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..ops.hashgrid import HashGridSpec, hash_grid_encode


class _TruncExp(torch.autograd.Function):
    """exp with the gradient clamped (Instant-NGP's density activation). The forward is
    capped at exp(30) ≈ 1e13, far past opaque for any step, so a diverging pre-activation
    gives a large σ, never inf (inf × an outside-the-box mask of 0 is NaN)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.exp(x.clamp(max=30.0))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * torch.exp(x.clamp(-15, 15))


def trunc_exp(x: torch.Tensor) -> torch.Tensor:
    return _TruncExp.apply(x)


class _RecoverableSigmoid(torch.autograd.Function):
    """sigmoid whose derivative never drops below ``floor`` (the forward is exact).

    A colour logit pushed far into saturation by the first large Adam steps has σ' ≈ 0 and
    never comes back: the whole head renders black for the rest of the run (seen on a
    4-identity synthetic cast at lr_mlp 5e-3: every logit < −20 after 40 steps, PSNR stuck at
    16.8 dB). With the floor the photometric gradient still reaches saturated logits, so they
    return; inside |x| < 4.6 (σ' > 0.01) the gradient is the exact one.
    """

    @staticmethod
    def forward(ctx, x, floor: float):
        y = torch.sigmoid(x)
        ctx.save_for_backward(y)
        ctx.floor = floor
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (y * (1 - y)).clamp_min(ctx.floor), None


def recoverable_sigmoid(x: torch.Tensor, floor: float = 1e-2) -> torch.Tensor:
    """[...] → [...] sigmoid(x), gradient floored at ``floor`` (see :class:`_RecoverableSigmoid`)."""
    return _RecoverableSigmoid.apply(x, floor)


def sh_encode(d: torch.Tensor, degree: int = 4) -> torch.Tensor:
    """Real spherical harmonics of unit directions d [N, 3] → [N, degree²] (degree ≤ 4)."""
    x, y, z = d.unbind(-1)
    out = [torch.full_like(x, 0.28209479177387814)]
    if degree > 1:
        out += [-0.48860251190291987 * y, 0.48860251190291987 * z, -0.48860251190291987 * x]
    if degree > 2:
        xy, yz, xz, x2, y2, z2 = x * y, y * z, x * z, x * x, y * y, z * z
        out += [1.0925484305920792 * xy, -1.0925484305920792 * yz, 0.94617469575755997 * z2 - 0.31539156525251999,
                -1.0925484305920792 * xz, 0.54627421529603959 * (x2 - y2)]
    if degree > 3:
        out += [0.59004358992664352 * y * (-3 * x2 + y2), 2.8906114426405538 * xy * z,
                0.45704579946446572 * y * (1 - 5 * z2), 0.3731763325901154 * z * (5 * z2 - 3),
                0.45704579946446572 * x * (1 - 5 * z2), 1.4453057213202769 * z * (x2 - y2),
                0.59004358992664352 * x * (-x2 + 3 * y2)]
    if degree > 4:
        raise ValueError("sh_degree must be ≤ 4")
    return torch.stack(out, -1)


class HashGrid(nn.Module):
    """Hash-grid parameters [P, F] (tcnn layout) and the encode call.

    Args:
        spec: grid geometry. backend: "torch", "cuda" (csrc kernels) or "tcnn"
            (tiny-cuda-nn's encoding, reading this same table). precision: "fp32" or
            "fp16" (the table is read rounded to float16; it stays a float32 parameter).
    Forward: x [N, 3] in [0, 1]³ → [N, L·F] float32. The state dict holds only ``table``,
    so a checkpoint loads under any backend.
    """

    def __init__(self, spec: HashGridSpec, backend: str = "torch", precision: str = "fp32"):
        super().__init__()
        self.spec, self.backend, self.precision = spec, backend, precision
        self.table = nn.Parameter(torch.empty(spec.n_params, spec.n_features).uniform_(-1e-4, 1e-4))
        self._tcnn = None  # built on first use; not a submodule (its parameter is our table)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "tcnn" and x.is_cuda:
            return self._tcnn_encode(x)
        return hash_grid_encode(x, self.table, self.spec, self.backend, self.precision)

    def _tcnn_encode(self, x: torch.Tensor) -> torch.Tensor:
        if self._tcnn is None:  # kept out of the module tree: no state of its own
            object.__setattr__(self, "_tcnn", tcnn_encoding(self.spec, x.device))
        enc = self._tcnn
        enc.__dict__["params"] = self.table.reshape(-1)  # tcnn's flat layout = our [P, F] row-major
        return enc(x).float()


def tcnn_encoding(spec: HashGridSpec, device):
    """A tinycudann.Encoding with ``spec``'s geometry whose own parameter is removed (the
    caller sets ``params`` to its table before each call). Raises ImportError naming the
    missing extra."""
    try:
        import tinycudann as tcnn
    except ImportError as e:
        raise ImportError("backend 'tcnn' needs tiny-cuda-nn's torch bindings (pip install "
                          "git+https://github.com/NVlabs/tiny-cuda-nn#subdirectory=bindings/torch)") from e
    cfg = {"otype": "HashGrid", "n_levels": spec.n_levels, "n_features_per_level": spec.n_features,
           "log2_hashmap_size": spec.log2_hashmap_size, "base_resolution": spec.base_resolution,
           "per_level_scale": float(spec.per_level_scale), "interpolation": "Linear"}
    with torch.cuda.device(device):
        enc = tcnn.Encoding(3, cfg)
    n = enc.params.numel()
    if n != spec.n_params * spec.n_features:
        raise RuntimeError(f"tcnn grid has {n} parameters, ours {spec.n_params * spec.n_features}: layouts differ")
    del enc.params  # drop tcnn's own parameter; ours is set per call
    return enc


def _mlp(i: int, hidden: int, layers: int, o: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    for _ in range(layers - 1):
        mods += [nn.Linear(i, hidden), nn.ReLU()]
        i = hidden
    mods.append(nn.Linear(i, o))
    return nn.Sequential(*mods)


def offset_mlp(i: int, hidden: int = 64) -> nn.Sequential:
    """[S, i] → [S, 3] MLP (one hidden layer) whose last layer starts at zero, so the offset
    it predicts starts at 0 (the residual offset, ``model.residual_offset``)."""
    net = _mlp(i, hidden, 2, 3)
    nn.init.zeros_(net[-1].weight)
    nn.init.zeros_(net[-1].bias)
    return net


class SplitInput(nn.Module):
    """First layer of an MLP whose input is [x ⊕ cond[rows]] with cond given per frame.

    Forward: x [S, i], cond [K, c] (or None), rows [S] int64 → relu(W_x x + W_c cond[rows] + b) [S, o].
    """

    def __init__(self, i: int, c: int, o: int):
        super().__init__()
        self.x = nn.Linear(i, o)
        self.c = nn.Linear(c, o, bias=False) if c > 0 else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor:
        h = self.x(x)
        if self.c is not None:
            h = h + self.c(cond)[rows]
        return torch.relu(h)


class RadianceField(nn.Module):
    """σ and colour of canonical points.

    Args:
        spec: hash grid. cond_density_dim / cond_color_dim: conditioning sizes (0 = none).
        density_hidden, density_layers, geo_features, color_hidden, color_layers, sh_degree: MLP shapes.
        backend: hash-grid backend. grid_precision: "fp32" / "fp16" table reads.
        mlp_precision: "fp32" or "bf16" (the MLPs run under CUDA autocast in bfloat16; σ
        and colours leave in float32).
    Forward:
        x01 [S, 3] canonical points in [0, 1]³, dirs [S, 3] unit canonical directions,
        cond_density [K, Cd] / cond_color [K, Cc] per-frame conditioning (or None),
        rows_density / rows_color [S] row of each sample → sigma [S], rgb [S, 3].
    """

    def __init__(self, spec: HashGridSpec, *, cond_density_dim: int = 0, cond_color_dim: int = 0, density_hidden: int = 64,
                 density_layers: int = 1, geo_features: int = 15, color_hidden: int = 64, color_layers: int = 2,
                 sh_degree: int = 4, backend: str = "torch", grid_precision: str = "fp32", mlp_precision: str = "fp32"):
        super().__init__()
        if mlp_precision not in ("fp32", "bf16"):
            raise ValueError(f"mlp_precision must be 'fp32' or 'bf16', got {mlp_precision!r}")
        self.grid = HashGrid(spec, backend, grid_precision)
        self.mlp_precision = mlp_precision
        self.sh_degree = sh_degree
        self.density_in = SplitInput(spec.out_dim, cond_density_dim, density_hidden)
        self.density_out = _mlp(density_hidden, density_hidden, density_layers, 1 + geo_features)
        self.color_in = SplitInput(geo_features + sh_degree**2, cond_color_dim, color_hidden)
        self.color_out = _mlp(color_hidden, color_hidden, color_layers, 3)

    def _autocast(self, x: torch.Tensor):
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.mlp_precision == "bf16" and x.is_cuda)

    def density(self, x01, cond_density=None, rows_density=None, feat_scale=None):
        """σ [S] and geometry features [S, G] of points x01 [S, 3]; feat_scale [S, L·F] or None
        multiplies the grid features (0 switches a level off for a sample)."""
        feats = self.grid(x01)
        if feat_scale is not None:
            feats = feats * feat_scale
        with self._autocast(x01):
            h = self.density_out(self.density_in(feats, cond_density, rows_density))
        h = h.float()
        return trunc_exp(h[:, 0] - 1.0), h[:, 1:]

    def forward(self, x01, dirs, cond_density=None, rows_density=None, cond_color=None, rows_color=None, feat_scale=None):
        sigma, geo = self.density(x01, cond_density, rows_density, feat_scale)
        with self._autocast(x01):
            h = self.color_in(torch.cat([geo, sh_encode(dirs, self.sh_degree)], -1), cond_color, rows_color)
            c = self.color_out(h)
        return sigma, recoverable_sigmoid(c.float())


def positional_encoding(x: torch.Tensor, n_freq: int) -> torch.Tensor:
    """[N, 3] → [N, 3 + 6·n_freq]: x, sin(2^k π x), cos(2^k π x)."""
    freqs = (2.0 ** torch.arange(n_freq, device=x.device, dtype=x.dtype)) * math.pi
    a = x[..., None] * freqs  # [N, 3, n]
    return torch.cat([x, a.sin().flatten(1), a.cos().flatten(1)], -1)
