"""The library entry points behind the CLI, in one place (each lives in its stage's module).

Example::

    from fastminerf.api import cast_of, load_avatar, render_sequence, train
    run_dir, metrics = train(load_config("tiny_cpu"), ["data/cast"])
    avatar, cfg = load_avatar(run_dir)
    frames = render_sequence(avatar, cast_of(avatar), "id000", expressions_from="id001")
"""
from __future__ import annotations

from .config import Config, load_config, load_variant
from .data.cast import Cast, load_cast
from .eval.evaluate import evaluate_cast, evaluate_identity, evaluate_transfer
from .model.avatar import Avatar
from .model.checkpoint import load_checkpoint
from .model.loading import avatar_from_state, cast_of, load_avatar
from .render.sequence import render_sequence, sequence_frames, smoothed_frames
from .render.video import write_image, write_video
from .train.adapt import add_identity, personalize
from .train.trainer import Trainer, train

__all__ = [
    "Avatar", "Cast", "Config", "Trainer", "add_identity", "avatar_from_state", "cast_of", "evaluate_cast",
    "evaluate_identity", "evaluate_transfer", "load_avatar", "load_cast", "load_checkpoint", "load_config",
    "load_variant", "personalize", "render_sequence", "sequence_frames", "smoothed_frames", "train", "write_image",
    "write_video",
]
