"""How expression e and identity code i are combined (MI-NeRF §3 and its ablations).

Every module maps e [B, d] and i [B, d_i] (and, for ``M_latent``, the latent code l
[B, latent_dim]) to a conditioning vector [B, out_dim] that the radiance field consumes.
Each variant is one class below, registered under its name in :data:`CONDITIONINGS` (the
names of ``model.conditioning``; :func:`build_conditioning` is the factory). ``*`` is the
element-wise product. Weights have no biases (the formulas are the paper's); the field's
MLPs carry the biases. The ablation presets in ``configs/variants/`` pick these by name.
"""
from __future__ import annotations

import torch
from torch import nn

#: name → conditioning class (filled by :func:`register`)
CONDITIONINGS: dict[str, type[ConditioningModule]] = {}


def register(name: str):
    """Class decorator: make the class the conditioning ``name``."""

    def add(cls):
        CONDITIONINGS[name] = cls
        cls.name = name
        return cls

    return add


def _lin(i: int, o: int) -> nn.Linear:
    layer = nn.Linear(i, o, bias=False)
    nn.init.normal_(layer.weight, std=1.0 / max(i, 1) ** 0.5)
    return layer


class ConditioningModule(nn.Module):
    """Base of the variants.

    Args:
        d: expression size. d_i: identity-code size. rank: k (M, H). stages: N (H).
        out_dim: o (M, H; default d). latent_dim: size of l (M_latent).
    Attributes:
        out_dim: size of the output. uses_latent: whether l enters the module.
    Forward:
        e [B, d], i [B, d_i], l [B, latent_dim] or None → [B, out_dim].
    """

    name = ""
    uses_latent = False
    #: the variant multiplies e and i element-wise, so it needs d_i == d
    needs_equal_sizes = False

    def __init__(self, d: int, d_i: int, rank: int, stages: int, out_dim: int | None, latent_dim: int):
        super().__init__()
        if self.needs_equal_sizes and d_i != d:
            raise ValueError(f"{self.name} multiplies e and i element-wise: identity size {d_i} must equal expression size {d}")
        self.d, self.d_i = d, d_i
        self.out_dim = d


@register("baseline")
class Baseline(ConditioningModule):
    """[e, i]: concatenation, no module (out_dim d + d_i)."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.out_dim = d + d_i

    def forward(self, e, i, l=None):
        return torch.cat([e, i], -1)


@register("concat_learned")
class ConcatLearned(ConditioningModule):
    """[W2 e; W3 i]: learnable concatenation (out_dim d + d_i)."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.W2, self.W3 = _lin(d, d), _lin(d_i, d_i)
        self.out_dim = d + d_i

    def forward(self, e, i, l=None):
        return torch.cat([self.W2(e), self.W3(i)], -1)


class _Linear2(ConditioningModule):
    """Shared weights of A1, A2, A5: W2 [d, d], W3 [d, d_i]."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.W2, self.W3 = _lin(d, d), _lin(d_i, d)


@register("A1")
class A1(_Linear2):
    """W2 e + W3 i."""

    def forward(self, e, i, l=None):
        return self.W2(e) + self.W3(i)


@register("A2")
class A2(_Linear2):
    """(e * i) + W2 e + W3 i."""

    needs_equal_sizes = True

    def forward(self, e, i, l=None):
        return e * i + self.W2(e) + self.W3(i)


@register("A5")
class A5(_Linear2):
    """(W2 e) * (W3 i) + W2 e + W3 i."""

    def forward(self, e, i, l=None):
        a, b = self.W2(e), self.W3(i)
        return a * b + a + b


class _Shared(ConditioningModule):
    """One shared weight W1 [d, d] (A3, A4)."""

    needs_equal_sizes = True

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.W1 = _lin(d, d)


@register("A3")
class A3(_Shared):
    """W1 (e * i) + W1 e + W1 i (one shared W1)."""

    def forward(self, e, i, l=None):
        return self.W1(e * i) + self.W1(e) + self.W1(i)


@register("A4")
class A4(_Shared):
    """W1 (e * i)."""

    def forward(self, e, i, l=None):
        return self.W1(e * i)


@register("A6")
class A6(ConditioningModule):
    """W1 (e * i) + W2 e + W3 i."""

    needs_equal_sizes = True

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.W1, self.W2, self.W3 = _lin(d, d), _lin(d, d), _lin(d_i, d)

    def forward(self, e, i, l=None):
        return self.W1(e * i) + self.W2(e) + self.W3(i)


@register("A7")
class A7(ConditioningModule):
    """W ×2 e ×3 i: the full third-order tensor W [d, d, d_i] (d²·d_i parameters)."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.W = nn.Parameter(torch.randn(d, d, d_i) / (d * d_i) ** 0.5)

    def forward(self, e, i, l=None):
        return torch.einsum("jab,na,nb->nj", self.W, e, i)


@register("M")
class M(ConditioningModule):
    """MI-NeRF's multiplicative module: C[(U1 e) * (U2 i)] + W2 e + W3 i with U1: k×d,
    U2: k×d_i, C: o×k (rank k), W2: o×d, W3: o×d_i; out_dim o (default d)."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        o = self.default_out(d, out_dim)
        self.U1, self.U2, self.C = _lin(d, rank), _lin(d_i, rank), _lin(rank, o)
        self.W2, self.W3 = _lin(d, o), _lin(d_i, o)
        self.out_dim = o

    @staticmethod
    def default_out(d: int, out_dim: int | None) -> int:
        return out_dim or d

    def forward(self, e, i, l=None):
        return self.C(self.U1(e) * self.U2(i)) + self.W2(e) + self.W3(i)


@register("M_o256")
class M_o256(M):
    """M with output size o = 256."""

    @staticmethod
    def default_out(d: int, out_dim: int | None) -> int:
        return 256


@register("M_latent")
class M_latent(M):
    """C[(U1 e) * (U2 i) * (U3 l)] + W2 e + W3 i + W4 l: the latent code enters the module
    (three-way products); U3: k×latent_dim, W4: o×latent_dim."""

    uses_latent = True

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.U3, self.W4 = _lin(latent_dim, rank), _lin(latent_dim, self.out_dim)

    def forward(self, e, i, l=None):
        if l is None:
            raise ValueError("M_latent needs the latent code l")
        return self.C(self.U1(e) * self.U2(i) * self.U3(l)) + self.W2(e) + self.W3(i) + self.W4(l)


@register("H")
class H(ConditioningModule):
    """High-degree module: x1 = U11 e + U12 i; xn = x(n−1) + (Un1 e + Un2 i) * x(n−1) for
    n = 2..N (N = ``stages``); H = C xN with hidden size k (= ``rank``), out_dim o (default d)."""

    def __init__(self, d, d_i, rank, stages, out_dim, latent_dim):
        super().__init__(d, d_i, rank, stages, out_dim, latent_dim)
        self.Ue = nn.ModuleList([_lin(d, rank) for _ in range(stages)])
        self.Ui = nn.ModuleList([_lin(d_i, rank) for _ in range(stages)])
        self.out_dim = out_dim or d
        self.C = _lin(rank, self.out_dim)

    def forward(self, e, i, l=None):
        x = self.Ue[0](e) + self.Ui[0](i)
        for ue, ui in zip(self.Ue[1:], self.Ui[1:]):
            x = x + (ue(e) + ui(i)) * x
        return self.C(x)


def build_conditioning(name: str, d: int, d_i: int | None = None, *, rank: int = 8, stages: int = 2,
                       out_dim: int | None = None, latent_dim: int = 32) -> ConditioningModule:
    """The conditioning module ``name`` (a key of :data:`CONDITIONINGS`) for expression size
    ``d`` and identity size ``d_i`` (default d). ValueError for unknown names or sizes a
    variant cannot take."""
    if name not in CONDITIONINGS:
        raise ValueError(f"unknown conditioning {name!r}; choose one of {', '.join(CONDITIONINGS)}")
    return CONDITIONINGS[name](d, d if d_i is None else d_i, rank, stages, out_dim, latent_dim)
