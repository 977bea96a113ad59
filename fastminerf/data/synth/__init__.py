"""The procedural synthetic cast: a head model of our own, per-identity appearance and motion,
a CPU renderer, and :func:`~fastminerf.data.synth.cast.synthesize_cast` (``fastminerf synth``).

Modules, in data-flow order: ``implicit`` (smooth head shape) → ``grid`` (topology) → ``head``
(the :class:`~fastminerf.data.face_model.FaceModel`) and ``expressions`` (blendshapes) →
``regions`` / ``appearance`` (what a surface point looks like) → ``motion`` (talking-head
trajectories) → ``render`` (z-buffer + shading) → ``cast`` (writes a dataset) and
``contact`` (the contact sheet).
"""
from .head import MODEL_NAME, build_head_model, build_synth_head

__all__ = ["MODEL_NAME", "build_head_model", "build_synth_head"]
