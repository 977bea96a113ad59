"""Offline lip-sync evaluation (SyncNet's weights cannot be downloaded): predicted mouth
coefficients against the tracked ones, on held-out audio.

Protocols:
- ``heldout``: one model trained on every clip's first 90 %; scored on the last 10 % of
  each clip (pooled over clips; each clip predicted whole, so its context is real audio);
- ``loso`` (leave one speaker out): per speaker, a model trained on all the others' whole
  clips scores that speaker's whole clip (the "anyone" speaker code); averaged over speakers.

Metrics (:func:`sync_metrics`): ``mouth_mae`` (mean absolute error of the K mouth
coefficients), ``jaw_corr`` (Pearson correlation of jaw-open), ``lip_vertex_mm`` (mean
distance of the lip and mouth vertices between the predicted and the tracked expression,
through the expression basis: Σ_k Δe_k · basis_k), ``offset`` (the shift s in frames that
maximises corr(pred[t], tracked[t + s]); 0 = in sync, > 0 = the prediction leads).

Baselines (:func:`baselines`): ``mean`` (the training mean expression: constant), ``energy``
(per-coefficient least squares on the frame's log audio energy, fitted on the training
frames), and the tracked ground truth itself (scores are perfect by construction for the
coefficient metrics; it matters on rendered frames).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.regions import MOUTH_REGIONS

MAX_OFFSET = 6  # frames searched either way


def corr(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation (0 when either side is constant)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size < 3 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def best_offset(pred: np.ndarray, true: np.ndarray, max_offset: int = MAX_OFFSET) -> int:
    """The shift s in [−max_offset, max_offset] maximising corr(pred[t], true[t + s])."""
    best, arg = -np.inf, 0
    T = len(pred)
    for s in range(-max_offset, max_offset + 1):
        a = pred[max(0, -s) : T - max(0, s)]
        b = true[max(0, s) : T - max(0, -s)] if s >= 0 else true[: T + s]
        c = corr(a, b)
        if c > best + 1e-9 or (abs(c - best) <= 1e-9 and abs(s) < abs(arg)):
            best, arg = c, s
    return int(arg)


def lip_vertex_error(pred: np.ndarray, true: np.ndarray, cols, basis: np.ndarray | None,
                     regions: np.ndarray | None) -> float | None:
    """Mean lip/mouth vertex distance (mm) between expressions pred and true [T, K] (columns
    ``cols`` of the basis [E, V, 3], metres); None without a basis or mouth regions."""
    if basis is None or regions is None:
        return None
    lip = np.isin(regions, MOUTH_REGIONS)
    if not lip.any():
        return None
    b = np.asarray(basis, np.float32)[np.asarray(cols)][:, lip]  # [K, L, 3]
    d = np.einsum("tk,klc->tlc", (pred - true).astype(np.float32), b)
    return float(np.linalg.norm(d, axis=-1).mean() * 1000.0)


def sync_metrics(pred: np.ndarray, true: np.ndarray, jaw: int, cols=None, basis=None, regions=None,
                 offsets: bool = True) -> dict:
    """Metrics of predicted vs tracked coefficients [T, K] (see module docstring)."""
    out = {"frames": int(len(pred)), "mouth_mae": float(np.abs(pred - true).mean()),
           "jaw_corr": corr(pred[:, jaw], true[:, jaw])}
    out["lip_vertex_mm"] = lip_vertex_error(pred, true, cols, basis, regions) if cols is not None else None
    if offsets:
        out["offset"] = best_offset(pred[:, jaw], true[:, jaw]) if out["jaw_corr"] != 0.0 else None
    return out


def energy_baseline(train_energy: np.ndarray, train_target: np.ndarray):
    """Least-squares fit target [N, K] ≈ a · log energy + b on training frames; returns
    predict(energy [T]) → [T, K]."""
    A = np.stack([train_energy, np.ones_like(train_energy)], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(A, train_target.astype(np.float64), rcond=None)
    return lambda e: (np.stack([e, np.ones_like(e)], 1) @ coef).astype(np.float32)


def pooled(parts: list[dict], preds: list[np.ndarray], trues: list[np.ndarray], jaw: int, cols, basis, regions) -> dict:
    """Metrics over the concatenation of several segments; offset searched per segment and
    reported as the most common one (with the per-segment list)."""
    p, t = np.concatenate(preds), np.concatenate(trues)
    m = sync_metrics(p, t, jaw, cols, basis, regions, offsets=False)
    offs = [q.get("offset") for q in parts if q.get("offset") is not None]
    m["offset"] = int(np.bincount(np.asarray(offs) + MAX_OFFSET).argmax() - MAX_OFFSET) if offs else None
    m["offsets"] = offs
    return m


@torch.no_grad()
def evaluate_model(lip, clips, test_masks: list[np.ndarray], speakers: list[str | None], train_clips=None) -> dict:
    """Score a trained :class:`~fastminerf.lipsync.checkpoint.Lipsync` and the baselines.

    Args:
        clips: :class:`~fastminerf.lipsync.train.Clip` list to score; test_masks: per clip
            [T] bool frames that count; speakers: the speaker code per clip (None: "anyone").
        train_clips: (clip, train mask) pairs the baselines are fitted on.
    Returns:
        {"model": metrics, "mean": ..., "energy": ..., "per_clip": {name: metrics}}.
    """
    cols, jaw = list(lip.indices), lip.jaw
    basis, regions = clips[0].expression_basis, clips[0].vertex_regions
    tr_e = np.concatenate([c.energy[m] for c, m in train_clips])
    tr_y = np.concatenate([c.expressions[m][:, cols] for c, m in train_clips])
    energy_fit = energy_baseline(tr_e, tr_y)
    mean = tr_y.mean(0)
    out = {}
    for name, predict in (("model", lambda c, s: lip.predict_features(c.features, s)),
                          ("energy", lambda c, s: energy_fit(c.energy)),
                          ("mean", lambda c, s: np.repeat(mean[None], c.n_frames, 0).astype(np.float32))):
        parts, preds, trues, per = [], [], [], {}
        for c, m, s in zip(clips, test_masks, speakers):
            p = predict(c, s)[m]
            t = c.expressions[m][:, cols]
            q = sync_metrics(p, t, jaw, cols, basis, regions)
            parts.append(q)
            preds.append(p)
            trues.append(t)
            per[c.name] = q
        out[name] = pooled(parts, preds, trues, jaw, cols, basis, regions)
        out[name]["per_clip"] = per
        out[name]["jaw_corr_clip_mean"] = float(np.mean([q["jaw_corr"] for q in parts]))
    return out
