"""How expression e and identity code i are combined (MI-NeRF §3 and its ablations).

Every module maps e [B, d] and i [B, d_i] to a conditioning vector [B, out_dim] that the
radiance field consumes. Names (config ``model.conditioning``):

=================  ==========================================================  ===========
name               formula                                                      out_dim
=================  ==========================================================  ===========
``baseline``       [e, i] (concatenation, no module)                            d + d_i
``A1``             W2 e + W3 i                                                  d
``A2``             (e * i) + W2 e + W3 i                                        d
``A3``             W1 (e * i) + W1 e + W1 i  (one shared W1)                    d
``A4``             W1 (e * i)                                                   d
``A5``             (W2 e) * (W3 i) + W2 e + W3 i                                d
``A6``             W1 (e * i) + W2 e + W3 i                                     d
``A7``             W ×2 e ×3 i (full third-order tensor, d³ parameters)         d
``M``              C[(U1 e) * (U2 i)] + W2 e + W3 i, U: k×d, C: o×k (k = rank)  o (= d)
``H``              x1 = U11 e + U12 i; xn = x(n−1) + (Un1 e + Un2 i) * x(n−1);  o (= d)
                   H = C xN  (N = ``stages``)
``M_o256``         M with output size 256                                       256
``concat_learned`` [W2 e; W3 i]                                                 2d
``M_latent``       C[(U1 e) * (U2 i) * (U3 l)] + W2 e + W3 i + W4 l (the latent  o (= d)
                   code enters the module; three-way products)
=================  ==========================================================  ===========

``*`` is the element-wise product. A2–A4 and A6 need d_i = d. Weights have no biases
(the formulas are the paper's); the field's MLPs carry the biases.
"""
from __future__ import annotations

import torch
from torch import nn

NAMES = ("baseline", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "M", "H", "M_o256", "concat_learned", "M_latent")


def _lin(i: int, o: int) -> nn.Linear:
    layer = nn.Linear(i, o, bias=False)
    nn.init.normal_(layer.weight, std=1.0 / max(i, 1) ** 0.5)
    return layer


class Conditioning(nn.Module):
    """Conditioning module selected by name.

    Args:
        name: one of :data:`NAMES`.
        d: expression size. d_i: identity-code size (default d). rank: k for M.
        stages: N for H. out_dim: o for M/H (default d). latent_dim: size of l (M_latent).
    Forward:
        e [B, d], i [B, d_i], l [B, latent_dim] (only used by M_latent) → [B, out_dim].
    """

    def __init__(self, name: str, d: int, d_i: int | None = None, rank: int = 8, stages: int = 2,
                 out_dim: int | None = None, latent_dim: int = 32):
        super().__init__()
        if name not in NAMES:
            raise ValueError(f"unknown conditioning {name!r}; choose one of {', '.join(NAMES)}")
        d_i = d if d_i is None else d_i
        if name in ("A2", "A3", "A4", "A6") and d_i != d:
            raise ValueError(f"{name} multiplies e and i element-wise: identity size {d_i} must equal expression size {d}")
        o = 256 if name == "M_o256" else (out_dim or d)
        self.name, self.d, self.d_i, self.uses_latent = name, d, d_i, name == "M_latent"
        if name == "baseline":
            self.out_dim = d + d_i
        elif name == "concat_learned":
            self.W2, self.W3 = _lin(d, d), _lin(d_i, d_i)
            self.out_dim = d + d_i
        elif name in ("A1", "A2", "A5"):
            self.W2, self.W3 = _lin(d, d), _lin(d_i, d)
            self.out_dim = d
        elif name in ("A3", "A4"):
            self.W1 = _lin(d, d)
            self.out_dim = d
        elif name == "A6":
            self.W1, self.W2, self.W3 = _lin(d, d), _lin(d, d), _lin(d_i, d)
            self.out_dim = d
        elif name == "A7":
            self.W = nn.Parameter(torch.randn(d, d, d_i) / (d * d_i) ** 0.5)
            self.out_dim = d
        elif name in ("M", "M_o256", "M_latent"):
            self.U1, self.U2, self.C = _lin(d, rank), _lin(d_i, rank), _lin(rank, o)
            self.W2, self.W3 = _lin(d, o), _lin(d_i, o)
            if name == "M_latent":
                self.U3, self.W4 = _lin(latent_dim, rank), _lin(latent_dim, o)
            self.out_dim = o
        elif name == "H":
            k = rank
            self.Ue = nn.ModuleList([_lin(d, k) for _ in range(stages)])
            self.Ui = nn.ModuleList([_lin(d_i, k) for _ in range(stages)])
            self.C = _lin(k, o)
            self.out_dim = o

    def forward(self, e: torch.Tensor, i: torch.Tensor, l: torch.Tensor | None = None) -> torch.Tensor:
        n = self.name
        if n == "baseline":
            return torch.cat([e, i], -1)
        if n == "concat_learned":
            return torch.cat([self.W2(e), self.W3(i)], -1)
        if n == "A1":
            return self.W2(e) + self.W3(i)
        if n == "A2":
            return e * i + self.W2(e) + self.W3(i)
        if n == "A3":
            return self.W1(e * i) + self.W1(e) + self.W1(i)
        if n == "A4":
            return self.W1(e * i)
        if n == "A5":
            a, b = self.W2(e), self.W3(i)
            return a * b + a + b
        if n == "A6":
            return self.W1(e * i) + self.W2(e) + self.W3(i)
        if n == "A7":
            return torch.einsum("jab,na,nb->nj", self.W, e, i)
        if n in ("M", "M_o256"):
            return self.C(self.U1(e) * self.U2(i)) + self.W2(e) + self.W3(i)
        if n == "M_latent":
            if l is None:
                raise ValueError("M_latent needs the latent code l")
            return self.C(self.U1(e) * self.U2(i) * self.U3(l)) + self.W2(e) + self.W3(i) + self.W4(l)
        # H
        x = self.Ue[0](e) + self.Ui[0](i)
        for ue, ui in zip(self.Ue[1:], self.Ui[1:]):
            x = x + (ue(e) + ui(i)) * x
        return self.C(x)
