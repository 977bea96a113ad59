"""The audio → expression network: a small dilated temporal convolution net.

    features [B, T, D] ──standardise──▶ Linear D→H (+ speaker code S→H)
      ──▶ L residual blocks: Conv1d(H, H, k=3, dilation d) → GELU → dropout
      ──▶ Linear H→K ──de-standardise──▶ mouth coefficients [B, T, K]

Dilations (1, 2, 4) give a receptive field of 15 frames: ±7 frames (≈ 0.56 s at 25 fps)
centred on the frame, or, with ``causal=True``, the frame and the 14 before it (streaming:
no look-ahead; the mouth then lags the sound it anticipates in speech by design).

The speaker code (optional, ``speaker_dim > 0``) is one learned vector per training
identity plus an "anyone" vector (row ``n_speakers``) that training substitutes for a
random share of windows: an unseen identity, or none, uses that one.
"""
from __future__ import annotations

import torch
from torch import nn


class AudioToExpression(nn.Module):
    """Args:
        in_dim: D feature size. out_dim: K mouth coefficients.
        hidden: H channels. dilations: one residual block per dilation (kernel 3).
        causal: pad on the left only (no look-ahead).
        n_speakers, speaker_dim: speaker-code table size (+1 "anyone" row) and width (0: none).
        dropout: inside the blocks (training only).
    Buffers ``feat_mean/feat_std`` [D] and ``target_mean/target_std`` [K] standardise
    inputs and outputs (set from the training data).
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int = 64, dilations=(1, 2, 4), causal: bool = False,
                 n_speakers: int = 0, speaker_dim: int = 8, dropout: float = 0.1):
        super().__init__()
        self.causal = bool(causal)
        self.dilations = tuple(int(d) for d in dilations)
        self.inp = nn.Linear(in_dim, hidden)
        self.speaker = nn.Embedding(n_speakers + 1, speaker_dim) if speaker_dim > 0 else None
        self.speaker_proj = nn.Linear(speaker_dim, hidden, bias=False) if speaker_dim > 0 else None
        if self.speaker is not None:
            nn.init.zeros_(self.speaker.weight)
        self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, 3, dilation=d) for d in self.dilations)
        self.act, self.drop = nn.GELU(), nn.Dropout(dropout)
        self.out = nn.Linear(hidden, out_dim)
        self.register_buffer("feat_mean", torch.zeros(in_dim))
        self.register_buffer("feat_std", torch.ones(in_dim))
        self.register_buffer("target_mean", torch.zeros(out_dim))
        self.register_buffer("target_std", torch.ones(out_dim))

    @property
    def anyone(self) -> int:
        """Speaker index of the "anyone" code (unseen identities)."""
        return self.speaker.num_embeddings - 1 if self.speaker is not None else 0

    @property
    def receptive_field(self) -> tuple[int, int]:
        """(frames before, frames after) that one output frame sees."""
        r = sum(self.dilations)
        return (2 * r, 0) if self.causal else (r, r)

    def forward(self, features: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """features [B, T, D] raw; speaker [B] long or None ("anyone") → [B, T, K]
        standardised coefficients (see :meth:`predict` for coefficient units)."""
        x = self.inp((features - self.feat_mean) / self.feat_std)  # [B, T, H]
        if self.speaker is not None:
            if speaker is None:
                speaker = torch.full((x.shape[0],), self.anyone, dtype=torch.long, device=x.device)
            x = x + self.speaker_proj(self.speaker(speaker))[:, None]
        h = x.transpose(1, 2)  # [B, H, T]
        for conv, d in zip(self.convs, self.dilations):
            pad = (2 * d, 0) if self.causal else (d, d)
            h = h + self.drop(self.act(conv(nn.functional.pad(h, pad, mode="replicate"))))
        return self.out(h.transpose(1, 2))

    def predict(self, features: torch.Tensor, speaker: torch.Tensor | None = None) -> torch.Tensor:
        """[B, T, D] → [B, T, K] coefficients in the data's units."""
        return self(features, speaker) * self.target_std + self.target_mean
