"""Building avatars: a new one for a config, or a trained one from a checkpoint, and the cast
it was trained on.

Example::

    from fastminerf.model.loading import load_avatar, cast_of
    avatar, cfg = load_avatar("outputs/synth/tiny_cpu/<run>")
    cast = cast_of(avatar)
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..config import Config
from ..data.cast import Cast, expand_identity_paths, load_cast
from ..errors import InputError
from ..ops._backend import resolve_backend
from .avatar import Avatar
from .cast_info import CastInfo
from .checkpoint import load_checkpoint


def default_device() -> torch.device:
    """cuda when torch sees a GPU, else cpu."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build_avatar(cfg: Config, info: CastInfo, device, backend: str | None = None) -> Avatar:
    """A new Avatar for ``info`` on ``device`` (backend resolved from the config unless given)."""
    backend = backend or resolve_backend(cfg.train.backend)
    return Avatar(cfg.model, cfg.render, info, backend=backend).to(device)


def avatar_from_state(state: dict, device=None, backend: str | None = None) -> tuple[Avatar, Config]:
    """Rebuild an avatar (eval mode) from a loaded checkpoint dict (see
    :func:`~fastminerf.model.checkpoint.load_checkpoint`); InputError naming the file when
    the weights do not fit the checkpoint's config."""
    cfg = Config.from_dict(state["config"], state["path"])
    device = torch.device(device) if device is not None else default_device()
    backend = resolve_backend(backend or cfg.train.backend)
    try:
        avatar = Avatar(cfg.model, cfg.render, CastInfo.from_dict(state["cast"]), backend=backend)
        avatar.load_state_dict(state["model"])
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else "state mismatch"
        raise InputError(state["path"], f"checkpoint does not match its config ({first})") from None
    avatar.step = int(state["step"])
    return avatar.to(device).eval(), cfg


def load_avatar(checkpoint: str | Path, device=None, backend: str | None = None) -> tuple[Avatar, Config]:
    """Rebuild a trained avatar from a checkpoint file or run folder (on ``device``)."""
    return avatar_from_state(load_checkpoint(checkpoint), device, backend)


def cast_of(avatar: Avatar, identity_paths: list | None = None, names: list[str] | None = None) -> Cast:
    """The avatar's training cast (re-read from the folders stored in the checkpoint) or
    the given identity folders; ``names`` keeps only those identities (the others' folders
    need not exist — any subset of the model's identities renders and evaluates)."""
    paths = [Path(p) for p in (identity_paths or avatar.info.identity_roots)]
    if names is not None:
        unknown = [n for n in names if n not in avatar.info.names]
        if unknown:
            raise InputError(None, f"unknown identity {unknown[0]!r}; this model knows: {', '.join(avatar.info.names)}")
        if identity_paths:
            paths = [p for p in expand_identity_paths(paths) if p.name in names]
        else:
            paths = [paths[avatar.info.names.index(n)] for n in dict.fromkeys(names)]
        if not paths:
            raise InputError(None, f"none of {', '.join(names)} among the given identity folders")
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise InputError(missing[0], "identity folder of this checkpoint not found (pass --identities)")
    return load_cast(paths, expression_dims=avatar.info.n_expressions)
