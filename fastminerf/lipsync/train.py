"""Training the audio → expression model on a cast's own tracked clips and their audio.

Data: every identity folder with an ``audio.wav`` (``fastminerf preprocess`` writes it for
clips with sound, ``fastminerf synth`` writes a voice made from the mouth's own syllables).
Targets are the coefficients that move the mouth (:func:`mouth_coefficients`); training
uses each clip's training split (the first 90 %), the held-out last 10 % is for evaluation.

Loss per window: MSE of the standardised coefficients + ``velocity_weight`` × MSE of their
frame-to-frame differences (against jitter). Adam, cosine decay, one model for all identities
with an optional speaker code.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.cast import expand_identity_paths, read_any_identity
from ..data.regions import MOUTH_REGIONS
from ..errors import InputError
from ..progress import Progress
from .audio import load_audio
from .checkpoint import save_lipsync
from .features import audio_features, check_kind, feature_dim, frame_energy
from .model import AudioToExpression


@dataclass
class LipsyncConfig:
    """Options of :func:`train_lipsync` (the ``lipsync-train`` flags)."""

    features: str = "mel"             # "mel" or "mel+phones" (pocketsphinx, English)
    hidden: int = 64                  # channels of the temporal net
    dilations: tuple = (1, 2, 4)      # one residual conv block per dilation: ±7 frames of context
    causal: bool = False              # no look-ahead (streaming)
    speaker_dim: int = 8              # speaker-code width (0: no speaker code)
    speaker_dropout: float = 0.3      # share of windows trained with the "anyone" code
    dropout: float = 0.1
    steps: int = 1500
    batch: int = 16                   # windows per step
    window: int = 48                  # frames per window
    lr: float = 2e-3
    weight_decay: float = 1e-4
    velocity_weight: float = 1.0      # weight of the frame-to-frame difference term
    target_norm: str = "speaker"      # standardise targets per clip ("speaker") or over the cast ("global")
    input_noise: float = 0.0          # std of Gaussian noise on the standardised features (training only)
    seed: int = 0

    def check(self) -> None:
        check_kind(self.features)
        if self.target_norm not in ("speaker", "global"):
            raise InputError(None, f"target_norm must be speaker or global (got {self.target_norm!r})")
        for name in ("hidden", "steps", "batch", "window"):
            if getattr(self, name) < 1:
                raise InputError(None, f"lipsync {name} must be at least 1 (got {getattr(self, name)})")


@dataclass
class Clip:
    """One identity's clip: features [T, D], expressions [T, E], is_train [T], fps."""

    name: str
    root: Path
    fps: float
    features: np.ndarray
    expressions: np.ndarray
    is_train: np.ndarray
    expression_names: list[str]
    energy: np.ndarray | None = None
    expression_basis: np.ndarray | None = None
    vertex_regions: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.expressions.shape[0])


def load_clip(root: str | Path, features: str = "mel") -> Clip:
    """Read an identity folder's expressions and ``audio.wav`` and compute the features."""
    data = read_any_identity(root)
    wav = Path(data.root) / "audio.wav"
    if not wav.is_file():
        raise InputError(wav, "no audio.wav in this identity folder (preprocess writes one for clips with sound; "
                              "fastminerf synth writes one)")
    audio = load_audio(wav)
    feats = audio_features(audio.samples, audio.sample_rate, data.fps, data.n_frames, features)
    energy = frame_energy(audio.samples, audio.sample_rate, data.fps, data.n_frames)
    return Clip(data.name, Path(data.root), float(data.fps), feats, np.asarray(data.expressions, np.float32),
                np.asarray(data.is_train, bool), list(data.expression_names), energy, data.expression_basis,
                data.vertex_regions, {"audio_seconds": audio.duration})


def mouth_coefficients(names: list[str], expressions: np.ndarray, basis: np.ndarray | None = None,
                       regions: np.ndarray | None = None) -> list[int]:
    """Columns of the coefficients that move the mouth.

    Named ARKit-style coefficients (ICT-FaceKit, the synthetic head): every ``jaw*`` and
    ``mouth*``. Otherwise, with an expression basis and mouth regions (lips 130/120, mouth
    interior 140): the coefficients whose typical lip motion (std of the coefficient × RMS
    displacement of the lip vertices in its blendshape) reaches 10 % of the largest.
    Otherwise all coefficients. The first returned is the jaw opener (``jawOpen``, or the
    largest lip motion).
    """
    named = [k for k, n in enumerate(names) if n.startswith(("jaw", "mouth"))]
    if named:
        return sorted(named, key=lambda k: (names[k] != "jawOpen", k))
    E = expressions.shape[1]
    if basis is not None and regions is not None and np.isin(regions, MOUTH_REGIONS).any():
        lip = np.isin(regions, MOUTH_REGIONS)
        motion = expressions.std(0) * np.sqrt((basis[:, lip] ** 2).sum(-1).mean(1))  # [E]
        keep = [k for k in np.argsort(-motion) if motion[k] >= 0.1 * motion.max() and motion[k] > 0]
        return [int(k) for k in keep] or list(range(E))
    return list(range(E))


def jaw_coefficient(names: list[str], cols: list[int]) -> int:
    """Index among ``cols`` of the jaw-open coefficient (``jawOpen``, else the first)."""
    for j, k in enumerate(cols):
        if k < len(names) and names[k] == "jawOpen":
            return j
    return 0


def _windows(clips: list[Clip], rng: np.random.Generator, batch: int, window: int):
    """(clip index [B], start [B]) of training windows: clips uniformly, starts uniformly
    inside the clip's training frames."""
    ids = rng.integers(0, len(clips), batch)
    starts = np.array([rng.integers(0, max(1, int(clips[i].is_train.sum()) - window + 1)) for i in ids])
    return ids, starts


def _loss(pred: torch.Tensor, target: torch.Tensor, velocity_weight: float) -> torch.Tensor:
    """MSE + velocity_weight · MSE of first differences over time; pred/target [B, T, K]."""
    loss = torch.mean((pred - target) ** 2)
    if velocity_weight > 0 and pred.shape[1] > 1:
        loss = loss + velocity_weight * torch.mean(((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1])) ** 2)
    return loss


def train_lipsync(identities: list[str | Path], out: str | Path, config: LipsyncConfig | None = None,
                  progress: bool = True, clips: list[Clip] | None = None, log=None) -> tuple[Path, dict]:
    """Train one model for all identities and write it to ``out``.

    Args:
        identities: identity folders or folders of them (each needs audio.wav).
        clips: already loaded clips (benchmarks reuse features); ``identities`` is then ignored.
    Returns:
        (model file, metrics of the held-out last 10 % of each clip: jaw correlation, MAE).
    """
    cfg = config or LipsyncConfig()
    cfg.check()
    t0 = time.perf_counter()
    if clips is None:
        clips = [load_clip(p, cfg.features) for p in expand_identity_paths(identities)]
    first = clips[0]
    for c in clips[1:]:
        if c.expression_names != first.expression_names or c.expressions.shape[1] != first.expressions.shape[1]:
            raise InputError(c.root, f"expression coefficients differ from {first.name}'s ({c.expressions.shape[1]} vs "
                                     f"{first.expressions.shape[1]}); one lip-sync model needs one expression space")
    names = first.expression_names
    cols = mouth_coefficients(names, np.concatenate([c.expressions[c.is_train] for c in clips]),
                              first.expression_basis, first.vertex_regions)
    jaw = jaw_coefficient(names, cols)
    feat_s = time.perf_counter() - t0

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    D = feature_dim(cfg.features)
    net = AudioToExpression(D, len(cols), cfg.hidden, cfg.dilations, cfg.causal, len(clips), cfg.speaker_dim, cfg.dropout)
    train_feats = np.concatenate([c.features[c.is_train] for c in clips])
    train_tgt = np.concatenate([c.expressions[c.is_train][:, cols] for c in clips])
    net.feat_mean.copy_(torch.from_numpy(train_feats.mean(0)))
    net.feat_std.copy_(torch.from_numpy(train_feats.std(0) + 1e-3))
    net.target_mean.copy_(torch.from_numpy(train_tgt.mean(0)))
    net.target_std.copy_(torch.from_numpy(train_tgt.std(0) + 1e-3))
    styles = [speaker_style(c.expressions[c.is_train][:, cols]) for c in clips]  # per clip (mean [K], std [K])
    if cfg.target_norm == "global":
        styles = [(net.target_mean.numpy(), net.target_std.numpy())] * len(clips)
    X = [torch.from_numpy(c.features) for c in clips]
    Y = [torch.from_numpy((c.expressions[:, cols] - mu) / sd) for c, (mu, sd) in zip(clips, styles)]
    window = max(2, min(cfg.window, min(int(c.is_train.sum()) for c in clips)))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s / cfg.steps, 1.0))))
    bar = Progress(cfg.steps, "lipsync step", enabled=progress)
    net.train()
    loss_ema = None
    val = {}
    with bar:
        for step in range(1, cfg.steps + 1):
            ids, starts = _windows(clips, rng, cfg.batch, window)
            x = torch.stack([X[i][s : s + window] for i, s in zip(ids, starts)])
            y = torch.stack([Y[i][s : s + window] for i, s in zip(ids, starts)])
            spk = torch.from_numpy(ids.astype(np.int64))
            spk = torch.where(torch.from_numpy(rng.random(cfg.batch) < cfg.speaker_dropout), net.anyone, spk)
            if cfg.input_noise > 0:
                x = x + cfg.input_noise * net.feat_std * torch.randn_like(x)
            loss = _loss(net(x, spk), y, cfg.velocity_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_ema = loss.item() if loss_ema is None else 0.95 * loss_ema + 0.05 * loss.item()
            if step % 250 == 0 or step == cfg.steps:
                net.eval()
                val = heldout_fit(net, clips, cols, jaw, styles)
                net.train()
            jc = val.get("jaw_corr")
            bar.update(step, f"loss {loss_ema:.4f}" + (f"  held-out jaw r {jc:.3f}" if jc is not None else ""))
    net.eval()
    metrics = {**heldout_fit(net, clips, cols, jaw, styles), "train_seconds": round(time.perf_counter() - t0, 2),
               "feature_seconds": round(feat_s, 2), "steps": cfg.steps, "window": window}
    cfg_dict = asdict(cfg)
    cfg_dict["dilations"] = list(cfg.dilations)
    meta = {"config": cfg_dict, "in_dim": D, "coefficients": [names[k] for k in cols], "coefficient_indices": list(cols),
            "expression_names": list(names), "jaw": jaw, "speakers": [c.name for c in clips],
            "speaker_fps": [c.fps for c in clips], "speaker_mean": [st[0].tolist() for st in styles],
            "speaker_std": [st[1].tolist() for st in styles], "steps": cfg.steps, "metrics": metrics}
    path = save_lipsync(out, net, meta)
    if log is not None:
        log(f"lip-sync model: {path} ({len(clips)} identities, {len(cols)} coefficients, held-out jaw correlation "
            f"{metrics['jaw_corr']:.3f}, {metrics['train_seconds']:.0f} s)")
    return path, metrics


def speaker_style(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean [K], std [K]) float32 of one identity's mouth coefficients [T, K]: how that
    person moves the mouth (the scale of the per-speaker target normalisation)."""
    return target.mean(0).astype(np.float32), (target.std(0) + 1e-3).astype(np.float32)


@torch.no_grad()
def heldout_fit(net: AudioToExpression, clips: list[Clip], cols: list[int], jaw: int, styles=None) -> dict:
    """Jaw-open correlation (pooled over the held-out frames of every clip) and mean absolute
    error of the K coefficients; each clip is predicted whole (its audio context included)."""
    pred, true = [], []
    for k, c in enumerate(clips):
        test = ~c.is_train
        if not test.any():
            continue
        z = net(torch.from_numpy(c.features)[None], torch.tensor([k]))[0].numpy()
        mu, sd = styles[k] if styles is not None else (net.target_mean.numpy(), net.target_std.numpy())
        p = z * sd + mu
        pred.append(p[test])
        true.append(c.expressions[test][:, cols])
    if not pred:
        return {}
    p, t = np.concatenate(pred), np.concatenate(true)
    return {"jaw_corr": _corr(p[:, jaw], t[:, jaw]), "mae": float(np.abs(p - t).mean())}


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.size < 2 or a.std() < 1e-9 or b.std() < 1e-9:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
