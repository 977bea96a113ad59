"""Run configuration: dataclasses with documented fields, YAML presets, ``--set`` overrides.

A preset is a YAML file with the sections below (``data``, ``model``, ``render``,
``train``); ``base: other.yaml`` inherits from another preset (path relative to the file,
or a preset name in ``configs/``). ``--set model.rank=32`` overrides one field (the value is
parsed as YAML). The full resolved config is written to every run as ``config.yml``.
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from .errors import InputError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def _f(default, doc: str):
    """A dataclass field with its help text (shown by ``fastminerf config --help-fields``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


@dataclass
class DataConfig:
    expression_dims: int | None = _f(None, "keep only the first E expression coefficients (INSTA uses 16); None = all")
    rays_per_batch: int = _f(4096, "rays per training step, drawn across identities and frames")
    frames_per_batch: int = _f(64, "frames drawn per step (identity-uniform); rays are spread over them")
    inside_fraction: float = _f(0.95, "share of rays inside the projected head box (MI-NeRF: 0.95)")


@dataclass
class ModelConfig:
    conditioning: str = _f("M", "how e and i combine: baseline, A1..A7, M, H, M_o256, concat_learned, M_latent")
    rank: int = _f(8, "rank k of M's CP factorisation (hidden size of H)")
    stages: int = _f(2, "N, the number of stages of H")
    cond_out_dim: int | None = _f(None, "output size o of M/H; None = expression size")
    identity_dim: int | None = _f(None, "identity-code size; None = expression size (the paper)")
    identity_init_std: float = _f(0.5, "std of the random initial identity codes")
    latent_dim: int = _f(32, "per-frame latent code size (0 disables latent codes)")
    normalize_expressions: bool = _f(True, "standardise expression coefficients with training-set mean/std")
    grid_levels: int = _f(16, "hash grid levels L")
    grid_features: int = _f(2, "features per level F")
    grid_log2_size: int = _f(19, "log2 of the per-level table size T")
    grid_base_resolution: int = _f(16, "coarsest grid resolution")
    grid_finest_resolution: int = _f(2048, "finest grid resolution (sets the per-level scale)")
    grid_precision: str = _f("fp32", "hash-table reads: 'fp32' or 'fp16' (table rounded to float16 when read; stays a float32 parameter, so checkpoints do not change)")
    mlp_precision: str = _f("fp32", "MLPs: 'fp32' or 'bf16' (CUDA autocast; σ and colours leave in float32)")
    density_hidden: int = _f(64, "width of the density MLP")
    density_layers: int = _f(1, "hidden layers of the density MLP")
    geo_features: int = _f(15, "features passed from the density MLP to the colour MLP")
    color_hidden: int = _f(64, "width of the colour MLP")
    color_layers: int = _f(2, "hidden layers of the colour MLP")
    sh_degree: int = _f(4, "spherical-harmonics degree of the view-direction encoding")
    cond_density: bool = _f(True, "feed [M(e,i)] to the density MLP")
    cond_color: bool = _f(True, "feed [M(e,i), l] to the colour MLP")
    cond_gate: str = _f("none", "'mouth': INSTA's gating, conditioning only for samples whose nearest triangle is in the mouth region (elsewhere 1.0)")
    far_mode: str = _f("cutoff", "samples farther than far_distance from the frame mesh: 'cutoff' (empty), 'rigid' (not deformed), 'none'")
    far_distance: float = _f(0.08, "far-from-mesh distance, as a fraction of the canonical mesh's bounding-box diagonal")
    height_scale: str = _f("none", "offset along the normal: 'none' (kept) or 'area' (scaled by sqrt of the triangle area ratio)")
    residual_offset: bool = _f(False, "learn a small canonical offset Δx from [PE(x_c), M(e,i)] for what the mesh cannot express")
    residual_max: float = _f(0.02, "largest |Δx|, as a fraction of the canonical bounding-box diagonal")
    residual_weight: float = _f(1e-2, "penalty weight on mean |Δx|² (relative to residual_max²)")
    aabb_margin: float = _f(0.12, "box around the meshes (head and canonical space), as a fraction of its size")


@dataclass
class RenderConfig:
    occupancy_resolution: int = _f(128, "occupancy grid cells per axis (head space)")
    occupancy_update_every: int = _f(16, "steps between occupancy-grid refreshes")
    occupancy_decay: float = _f(0.95, "EMA decay of the density grid")
    occupancy_threshold: float = _f(0.01, "a cell is occupied when one marching step through it is at least this opaque (alpha; capped by the mean density)")
    occupancy_init_band: float = _f(0.03, "cells this close to a training mesh start occupied (fraction of the canonical bounding-box diagonal)")
    mesh_depth_cut: bool = _f(True, "drop samples deeper than the far-from-mesh band behind the ray's first hit on its frame's mesh (mesh-guided early termination)")
    march_steps: int = _f(512, "samples along the box diagonal (sets the step size)")
    background: str = _f("random", "training background: 'random' (per-ray colour; supervises alpha), 'white', 'black'")
    eval_background: str = _f("white", "background of rendered images and of eval: 'white' or 'black'")
    chunk: int = _f(16384, "rays per chunk when rendering whole images")
    early_stop_transmittance: float = _f(1e-3, "inference only: a ray stops once its transmittance is below this (0 = off)")
    early_stop_block: int = _f(8, "inference only: samples per ray shaded per early-stop round")


@dataclass
class TrainConfig:
    steps: int = _f(20000, "training steps")
    max_minutes: float | None = _f(None, "stop after this wall time (minutes); None = run all steps")
    lr_grid: float = _f(1e-2, "Adam lr of the hash grid (Instant-NGP scale; MI-NeRF's 5e-4 is for a vanilla MLP)")
    lr_mlp: float = _f(5e-3, "Adam lr of the MLPs and the conditioning module")
    lr_codes: float = _f(5e-3, "Adam lr of identity and latent codes")
    lr_final_ratio: float = _f(0.1, "lr decays exponentially to this fraction (MI-NeRF: 5e-4 → 5e-5)")
    lr_warmup_steps: int = _f(50, "linear lr warm-up at the start (keeps the colour head out of sigmoid saturation)")
    adam_eps: float = _f(1e-15, "Adam epsilon (hash grids want it tiny)")
    loss: str = _f("l2", "photometric loss: 'l2' (MI-NeRF) or 'huber' (INSTA)")
    huber_delta: float = _f(0.1, "Huber threshold")
    latent_reg: float = _f(0.01, "weight of ||l|| (MI-NeRF: 0.01)")
    identity_reg: float = _f(1e-4, "weight of ||i|| (MI-NeRF: 1e-4)")
    alpha_weight: float = _f(0.0, "weight of an L2 loss between rendered opacity and the mask")
    expression_dropout: float = _f(0.5, "share of a step's frames whose expression code is replaced by the training mean (the mesh still carries the expression's geometry): keeps identity out of the expression channel (transfer +1.5/+2.1 dB on the demo cast, 2 seeds); not in MI-NeRF; 0 = off")
    eval_every: int = _f(1000, "steps between held-out evaluations (0 = only at the end)")
    eval_frames: int = _f(2, "held-out frames per identity in periodic evals (all in the final eval)")
    save_every: int = _f(2000, "steps between checkpoints (the last step is always saved)")
    keep_checkpoints: int = _f(3, "checkpoints kept in the run (oldest removed)")
    log_every: int = _f(10, "steps between progress-line updates")
    seed: int = _f(0, "seed of weights, ray batches and backgrounds")
    backend: str = _f("auto", "'auto' (cuda if built and a GPU is present, else torch), 'cuda', 'tcnn', 'torch'")
    threads: int | None = _f(None, "torch CPU threads (None = torch's default)")


@dataclass
class Config:
    name: str = _f("default", "preset name (runs go to outputs/<data>/<name>/<timestamp>/)")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict, source: str | Path | None = None) -> "Config":
        """Build from a nested dict; unknown keys are an error naming ``source``."""
        cfg = Config()
        apply_dict(cfg, d, source)
        return cfg


def apply_dict(cfg, d: dict, source=None, prefix: str = "") -> None:
    """Set fields of dataclass ``cfg`` from nested dict ``d`` (in place)."""
    names = {f.name: f for f in fields(cfg)}
    for k, v in d.items():
        if k not in names:
            raise InputError(source, f"unknown config key {prefix + k!r}")
        cur = getattr(cfg, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise InputError(source, f"config key {prefix + k!r} must be a section")
            apply_dict(cur, v, source, prefix + k + ".")
        else:
            setattr(cfg, k, _coerce(v, str(names[k].type), prefix + k, source))


def _coerce(v, annotation: str, key: str, source):
    """Value ``v`` as the field's declared type (``"float | None"``...); YAML reads ``1e-3``
    as a string, so numbers written that way are converted here."""
    kinds = [a.strip() for a in annotation.split("|")]
    if v is None and "None" in kinds:
        return None
    for kind, conv in (("bool", None), ("int", int), ("float", float), ("str", str)):
        if kind not in kinds:
            continue
        if kind == "bool":
            if isinstance(v, bool):
                return v
            continue
        if kind == "int" and isinstance(v, (bool, float)) and not (isinstance(v, float) and v.is_integer()):
            continue
        try:
            return conv(v)
        except (TypeError, ValueError):
            continue
    raise InputError(source, f"config key {key!r} expects {annotation}, got {v!r}")


def resolve_preset(name_or_path: str | Path) -> Path:
    """A preset path from a path or a name in configs/ (``tiny_cpu`` → configs/tiny_cpu.yaml)."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    for cand in (CONFIG_DIR / p, CONFIG_DIR / f"{p}.yaml", CONFIG_DIR / "variants" / f"{p}.yaml"):
        if cand.is_file():
            return cand
    raise InputError(p, "config file not found (give a path or a preset name from configs/)")


def _load_yaml(path: Path, depth: int = 0, inherit: bool = True) -> dict:
    """The mapping of a preset file, merged over its ``base`` chain (``inherit=False``: the
    file's own keys only)."""
    if depth > 8:
        raise InputError(path, "config 'base' chain too deep (a cycle?)")
    try:
        d = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise InputError(path, f"invalid YAML ({e})") from None
    if not isinstance(d, dict):
        raise InputError(path, "a config file must hold a mapping")
    base = d.pop("base", None)
    if base is None or not inherit:
        return d
    bp = (path.parent / base) if (path.parent / base).is_file() else resolve_preset(base)
    return _merge(_load_yaml(bp, depth + 1), d)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Resolve a config: defaults ← preset (with its bases) ← ``key=value`` overrides."""
    cfg = Config()
    if preset is not None:
        path = resolve_preset(preset)
        apply_dict(cfg, _load_yaml(path), path)
    apply_overrides(cfg, overrides)
    return cfg


def load_variant(variant: str | Path, base: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """A variant preset's own settings on another base preset.

    The presets in ``configs/variants/`` inherit ``tiny_cpu``; ``load_variant("M_k32",
    "insta_512_gpu")`` applies only what ``M_k32.yaml`` itself sets (and its ``name``) over
    ``insta_512_gpu``, then the ``key=value`` overrides. ``base=None`` is :func:`load_config`.
    """
    if base is None:
        return load_config(variant, overrides)
    cfg = load_config(base)
    path = resolve_preset(variant)
    apply_dict(cfg, _load_yaml(path, inherit=False), path)
    apply_overrides(cfg, overrides)
    return cfg


def apply_overrides(cfg: Config, overrides: list[str] | None) -> None:
    """Apply ``key=value`` overrides (values parsed as YAML) to ``cfg`` in place."""
    for item in overrides or []:
        if "=" not in item:
            raise InputError(None, f"--set expects key=value, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        nested: dict = {}
        cur = nested
        parts = key.strip().split(".")
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
        apply_dict(cfg, nested, f"--set {item}")


def save_config(cfg: Config, path: Path) -> None:
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
