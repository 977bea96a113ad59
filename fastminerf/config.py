"""Run configuration: dataclasses with documented fields, YAML presets, ``--set`` overrides.

A preset is a YAML file with the sections below (``data``, ``model``, ``render``,
``train``); ``base: other.yaml`` inherits from another preset (path relative to the file,
or a preset name in ``configs/``). ``--set model.rank=32`` overrides one field (the value is
parsed as YAML). The full resolved config is written to every run as ``config.yml``.

Every field is checked when it is set: its type (modes are ``Literal`` choices, so a typo
such as ``model.cond_gate=mouht`` is one line naming the field and its choices) and its
range (``gt``/``ge``/``le`` in the field's metadata: > 0 for sizes, [0, 1] for fractions).
"""
from __future__ import annotations

import dataclasses
import functools
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

import yaml

from .errors import InputError
from .files import write_text
from .resources import resource_dir

CONFIG_DIR = resource_dir("configs")

#: names of the conditioning modules (fastminerf.model.conditioning registers one class each)
ConditioningName = Literal["baseline", "A1", "A2", "A3", "A4", "A5", "A6", "A7", "M", "H", "M_o256", "concat_learned",
                           "M_latent"]
Precision = Literal["fp32", "fp16"]
MlpPrecision = Literal["fp32", "bf16"]
CondGate = Literal["none", "mouth"]
FarMode = Literal["cutoff", "rigid", "none"]
CanonicalMouth = Literal["neutral", "open"]
HeightScale = Literal["none", "area"]
TrainBackground = Literal["random", "white", "black"]
Background = Literal["white", "black"]
Loss = Literal["l2", "huber"]
Backend = Literal["auto", "cuda", "tcnn", "torch"]


def _f(default, doc: str, **bounds):
    """A dataclass field with its help text and optional bounds (``gt``, ``ge``, ``le``, ``lt``)
    checked whenever the field is set (None values are not range-checked)."""
    meta = {"doc": doc, **bounds}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: type(d)(d), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class DataConfig:
    expression_dims: int | None = _f(None, "keep only the first E expression coefficients (INSTA uses 16); None = all", gt=0)
    rays_per_batch: int = _f(4096, "rays per training step, drawn across identities and frames", gt=0)
    frames_per_batch: int = _f(64, "frames drawn per step (identity-uniform); rays are spread over them", gt=0)
    inside_fraction: float = _f(0.95, "share of rays inside the projected head box (MI-NeRF: 0.95)", ge=0, le=1)
    mouth_fraction: float = _f(0.0, "share of rays drawn inside the ground truth's mouth box (seg_mask lips + interior); 0 = off", ge=0, le=1)


@dataclass
class ModelConfig:
    conditioning: ConditioningName = _f("M", "how e and i combine: baseline, A1..A7, M, H, M_o256, concat_learned, M_latent")
    rank: int = _f(8, "rank k of M's CP factorisation (hidden size of H)", gt=0)
    stages: int = _f(2, "N, the number of stages of H", gt=0)
    cond_out_dim: int | None = _f(None, "output size o of M/H; None = expression size", gt=0)
    identity_dim: int | None = _f(None, "identity-code size; None = expression size (the paper)", gt=0)
    identity_init_std: float = _f(0.5, "std of the random initial identity codes", ge=0)
    latent_dim: int = _f(32, "per-frame latent code size (0 disables latent codes)", ge=0)
    normalize_expressions: bool = _f(True, "standardise expression coefficients with training-set mean/std")
    grid_levels: int = _f(16, "hash grid levels L", gt=0)
    grid_features: int = _f(2, "features per level F", gt=0)
    grid_log2_size: int = _f(19, "log2 of the per-level table size T", gt=0, le=30)
    grid_base_resolution: int = _f(16, "coarsest grid resolution", gt=0)
    grid_finest_resolution: int = _f(2048, "finest grid resolution (sets the per-level scale)", gt=0)
    grid_precision: Precision = _f("fp32", "hash-table reads: 'fp32' or 'fp16' (table rounded to float16 when read; stays a float32 parameter, so checkpoints do not change)")
    mlp_precision: MlpPrecision = _f("fp32", "MLPs: 'fp32' or 'bf16' (CUDA autocast; σ and colours leave in float32)")
    density_hidden: int = _f(64, "width of the density MLP", gt=0)
    density_layers: int = _f(1, "hidden layers of the density MLP", gt=0)
    geo_features: int = _f(15, "features passed from the density MLP to the colour MLP", gt=0)
    color_hidden: int = _f(64, "width of the colour MLP", gt=0)
    color_layers: int = _f(2, "hidden layers of the colour MLP", gt=0)
    sh_degree: int = _f(4, "spherical-harmonics degree of the view-direction encoding", gt=0, le=4)
    cond_density: bool = _f(True, "feed [M(e,i)] to the density MLP")
    cond_color: bool = _f(True, "feed [M(e,i), l] to the colour MLP")
    cond_gate: CondGate = _f("none", "'mouth': INSTA's gating, conditioning only for samples whose nearest triangle is in the mouth region (elsewhere 1.0)")
    far_mode: FarMode = _f("cutoff", "samples farther than far_distance from the frame mesh: 'cutoff' (empty), 'rigid' (not deformed), 'none'")
    far_distance: float = _f(0.08, "far-from-mesh distance, as a fraction of the canonical mesh's bounding-box diagonal", gt=0)
    height_scale: HeightScale = _f("none", "offset along the normal: 'none' (kept) or 'area' (scaled by sqrt of the triangle area ratio)")
    residual_offset: bool = _f(False, "learn a small canonical offset Δx from [PE(x_c), M(e,i)] for what the mesh cannot express")
    residual_max: float = _f(0.02, "largest |Δx|, as a fraction of the canonical bounding-box diagonal", gt=0)
    residual_weight: float = _f(1e-2, "penalty weight on mean |Δx|² (relative to residual_max²)", ge=0)
    canonical_mouth: CanonicalMouth = _f("neutral", "canonical mesh's mouth: 'neutral' (the cast's canonical.obj) or 'open' (opened like a wide-open training frame, so the gap of an open mouth is not carried into the opposite lip; the lips come from the cast's region ids or its lip seam, else it stays neutral)")
    mouth_cavity: bool = _f(False, "close a lip-seam mesh's mouth hole with a virtual cavity cup hung from the inner-lip loop, so open-mouth samples get their own canonical home (model/cavity.py); no-op for meshes with a mouth pocket")
    cavity_levels: int | None = _f(None, "samples whose nearest triangle is a mouth_cavity triangle read only the coarsest N grid levels, so the open mouth's interior is not memorised frame by frame (model/cavity.py CavityLevels); None = all", gt=0)
    mouth_cavity_depth: float = _f(1.2, "depth of the virtual mouth cavity, as a fraction of the mouth width", gt=0, le=3)
    aabb_margin: float = _f(0.12, "box around the meshes (head and canonical space), as a fraction of its size", ge=0)


@dataclass
class RenderConfig:
    occupancy_resolution: int = _f(128, "occupancy grid cells per axis (head space)", gt=0)
    occupancy_update_every: int = _f(16, "steps between occupancy-grid refreshes", gt=0)
    occupancy_decay: float = _f(0.95, "EMA decay of the density grid", ge=0, le=1)
    occupancy_threshold: float = _f(0.01, "a cell is occupied when one marching step through it is at least this opaque (alpha; capped by the mean density)", gt=0, lt=1)
    occupancy_init_band: float = _f(0.03, "cells this close to a training mesh start occupied (fraction of the canonical bounding-box diagonal)", ge=0)
    mesh_depth_cut: bool = _f(True, "drop samples deeper than the far-from-mesh band behind the ray's first hit on its frame's mesh (mesh-guided early termination)")
    march_steps: int = _f(512, "samples along the box diagonal (sets the step size)", gt=0)
    background: TrainBackground = _f("random", "training background: 'random' (per-ray colour; supervises alpha), 'white', 'black'")
    eval_background: Background = _f("white", "background of rendered images and of eval: 'white' or 'black'")
    chunk: int = _f(16384, "rays per chunk when rendering whole images", gt=0)
    early_stop_transmittance: float = _f(1e-3, "inference only: a ray stops once its transmittance is below this (0 = off)", ge=0, lt=1)
    early_stop_block: int = _f(8, "inference only: samples per ray shaded per early-stop round", gt=0)


@dataclass
class TrainConfig:
    steps: int = _f(20000, "training steps", gt=0)
    max_minutes: float | None = _f(None, "stop after this wall time (minutes); None = run all steps", gt=0)
    lr_grid: float = _f(1e-2, "Adam lr of the hash grid (Instant-NGP scale; MI-NeRF's 5e-4 is for a vanilla MLP)", gt=0)
    lr_mlp: float = _f(5e-3, "Adam lr of the MLPs and the conditioning module", gt=0)
    lr_codes: float = _f(5e-3, "Adam lr of identity and latent codes", gt=0)
    lr_final_ratio: float = _f(0.1, "lr decays exponentially to this fraction (MI-NeRF: 5e-4 → 5e-5)", gt=0, le=1)
    lr_warmup_steps: int = _f(50, "linear lr warm-up at the start (keeps the colour head out of sigmoid saturation)", ge=0)
    adam_eps: float = _f(1e-15, "Adam epsilon (hash grids want it tiny)", gt=0)
    loss: Loss = _f("l2", "photometric loss: 'l2' (MI-NeRF) or 'huber' (INSTA)")
    huber_delta: float = _f(0.1, "Huber threshold", gt=0)
    mouth_weight: float = _f(1.0, "photometric-loss weight of rays inside the ground truth's mouth box (seg_mask lips + interior, grown by 3 px): the mouth is ~4 % of the rays and low-contrast against skin, so it is learnt last; 1 = off", ge=1)
    lip_surface_weight: float = _f(0.0, "weight of the lip-surface prior: the mean, over rays whose first hit on the tracked mesh is a lip triangle, of the rendered weight more than 1.5 march steps in front of that hit (nothing real lies between the camera and the lips; without it a skin-coloured shell forms in front of the mouth); 0 = off", ge=0)
    latent_reg: float = _f(0.01, "weight of ||l|| (MI-NeRF: 0.01)", ge=0)
    identity_reg: float = _f(1e-4, "weight of ||i|| (MI-NeRF: 1e-4)", ge=0)
    alpha_weight: float = _f(0.0, "weight of an L2 loss between rendered opacity and the mask", ge=0)
    expression_dropout: float = _f(0.5, "share of a step's frames whose expression code is replaced by the training mean (the mesh still carries the expression's geometry): keeps identity out of the expression channel (transfer +1.5/+2.1 dB on the demo cast, 2 seeds); not in MI-NeRF; 0 = off", ge=0, le=1)
    eval_every: int = _f(1000, "steps between held-out evaluations (0 = only at the end)", ge=0)
    eval_frames: int = _f(2, "held-out frames per identity in periodic evals", gt=0)
    final_eval_frames: int | None = _f(8, "held-out frames per identity (evenly spaced) in the end-of-training evaluation; null = all (fastminerf eval always does all)", gt=0)
    save_every: int = _f(2000, "steps between checkpoints (the last step is always saved)", ge=0)
    keep_checkpoints: int = _f(3, "checkpoints kept in the run (oldest removed)", gt=0)
    log_every: int = _f(10, "steps between progress-line updates", gt=0)
    dropout_keeps_mouth: bool = _f(False, "samples of the virtual mouth cavity (model.mouth_cavity) keep their frame's own expression code when expression dropout replaces it: the rest of the face reads the expression from the mesh, the open mouth's interior (teeth, the gap), which a lip-seam mesh does not carry, from e")
    seed: int = _f(0, "seed of weights, ray batches and backgrounds", ge=0)
    backend: Backend = _f("auto", "'auto' (cuda if built and a GPU is present, else torch), 'cuda', 'tcnn', 'torch'")
    mesh_cache_mb: float | None = _f(None, "MB of per-frame mesh BVHs kept between steps (least recently used dropped first; results do not change); None = a quarter of the memory available at start (cgroup limit included), at most 4096", ge=0)
    threads: int | None = _f(None, "torch CPU threads (None = the cores this process may use: affinity, cgroup quota, OMP_NUM_THREADS)", gt=0)


@dataclass
class Config:
    name: str = _f("default", "preset name (runs go to outputs/<data>/<name>/<timestamp>/)")
    description: str = _f("", "one line saying what this preset is (tables of the ablation benchmark)")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict, source: str | Path | None = None) -> Config:
        """Build from a nested dict; unknown keys and bad values are an error naming ``source``."""
        cfg = Config()
        apply_dict(cfg, d, source)
        return cfg


def apply_dict(cfg, d: dict, source=None, prefix: str = "") -> None:
    """Set fields of dataclass ``cfg`` from nested dict ``d`` (in place), checking each value."""
    names = {f.name: f for f in fields(cfg)}
    hints = _hints(type(cfg))
    for k, v in d.items():
        if k not in names:
            raise InputError(source, f"unknown config key {prefix + k!r}")
        cur = getattr(cfg, k)
        if dataclasses.is_dataclass(cur):
            if not isinstance(v, dict):
                raise InputError(source, f"config key {prefix + k!r} must be a section")
            apply_dict(cur, v, source, prefix + k + ".")
        else:
            value = _coerce(v, hints[k], prefix + k, source)
            _check_range(value, names[k].metadata, prefix + k, source)
            setattr(cfg, k, value)


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def _coerce(v, tp, key: str, source):
    """Value ``v`` as the field's declared type ``tp`` (int, float, bool, str, a Literal of
    choices, or an Optional of one); YAML reads ``1e-3`` as a string, so numbers written
    that way are converted here."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if v is None and type(None) in options:
        return None
    for kind in options:
        if typing.get_origin(kind) is Literal:
            if v in typing.get_args(kind):
                return v
            choices = ", ".join(map(str, typing.get_args(kind)))
            raise InputError(source, f"config key {key!r} must be one of {choices} (got {v!r})")
    for kind in (bool, int, float, str):
        if kind not in options:
            continue
        if kind is bool:
            if isinstance(v, bool):
                return v
            continue
        if kind is int and (isinstance(v, bool) or (isinstance(v, float) and not v.is_integer())):
            continue
        if kind in (int, float) and isinstance(v, bool):
            continue
        try:
            return kind(v)
        except (TypeError, ValueError):
            continue
    want = " or ".join("None" if o is type(None) else getattr(o, "__name__", str(o)) for o in options)
    raise InputError(source, f"config key {key!r} expects {want}, got {v!r}")


_BOUNDS = {"gt": (lambda v, b: v > b, ">"), "ge": (lambda v, b: v >= b, ">="),
           "lt": (lambda v, b: v < b, "<"), "le": (lambda v, b: v <= b, "<=")}


def _check_range(value, meta, key: str, source) -> None:
    if value is None or isinstance(value, (bool, str)):
        return
    for name, (ok, sign) in _BOUNDS.items():
        if name in meta and not ok(value, meta[name]):
            raise InputError(source, f"config key {key!r} must be {sign} {meta[name]} (got {value!r})")


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
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where is not None else ""
        raise InputError(path, f"invalid YAML{at} ({getattr(e, 'problem', None) or type(e).__name__})") from None
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


def variant_names() -> list[str]:
    """The ablation variants: the presets in ``configs/variants/`` (file stems, sorted)."""
    return sorted(p.stem for p in (CONFIG_DIR / "variants").glob("*.yaml"))


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
    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
