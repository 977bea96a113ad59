"""Loss terms (MI-NeRF: photometric + 0.01·||l|| + 1e-4·||i||); the avatar assembles them
(:meth:`fastminerf.model.avatar.Avatar.loss_terms`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def photometric(pred: torch.Tensor, target: torch.Tensor, kind: str = "l2", delta: float = 0.1,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over rays of the squared error summed over RGB ("l2") or a Huber loss ("huber").
    pred, target: [R, 3]; weight: optional [R] per-ray weights (mean of weight × error, so
    rays of weight 1 keep their gradient) → scalar."""
    if kind == "l2":
        err = (pred - target).pow(2).sum(-1)
    elif kind == "huber":
        err = F.huber_loss(pred, target, delta=delta, reduction="none").sum(-1)
    else:
        raise ValueError(f"loss must be 'l2' or 'huber', got {kind!r}")
    return (err if weight is None else err * weight).mean()


def code_norms(codes: torch.Tensor) -> torch.Tensor:
    """Mean L2 norm of code rows [N, C] (the regulariser terms ||l||, ||i||) → scalar."""
    return codes.norm(dim=-1).mean() if codes.numel() else codes.sum()
