"""What the preview renders: the selected identity, its expression (sliders or a driving
sequence frame) and the mesh that goes with it.

:class:`ViewState` is shared by the GUI callbacks, the playback thread and the render
requests; :meth:`ViewState.scene` turns it into an immutable :class:`Scene` snapshot (the
render thread never sees a half-updated state).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..render.views import expression_mesh
from .sequences import CastSequences

SLIDERS = "sliders"  # the "expressions from" choice that means: the expression sliders


@dataclass(frozen=True)
class SliderSpec:
    """One expression slider: coefficient ``index`` labelled ``label`` over [lo, hi]."""

    index: int
    label: str
    lo: float
    hi: float
    step: float


def slider_specs(info, max_unnamed: int = 10) -> list[SliderSpec]:
    """Sliders for the named expression coefficients (all of them), or the leading
    ``max_unnamed`` components when the checkpoint has no names.

    Ranges: blendshape weights (every training mean ≥ 0) get [0, max(μ+3σ, 1)]; signed
    coefficients (FLAME-like) get [min(0, μ−3σ), max(0, μ+3σ)], widened to at least a
    quarter of the widest range so that nearly constant coefficients stay movable.
    """
    mean, std = np.asarray(info.expr_mean, np.float64), np.asarray(info.expr_std, np.float64)
    names = list(info.expression_names or [])
    named = [k for k in range(len(mean)) if k < len(names) and names[k]]
    keep = named if named else list(range(min(max_unnamed, len(mean))))
    if len(mean) and (mean >= 0).all():
        lo, hi = np.zeros_like(mean), np.maximum(mean + 3 * std, 1.0)
    else:
        lo, hi = np.minimum(0.0, mean - 3 * std), np.maximum(0.0, mean + 3 * std)
        pad = np.maximum(0.0, 0.25 * (hi - lo).max(initial=0.0) - (hi - lo)) / 2
        lo, hi = lo - pad, hi + pad
    return [SliderSpec(k, names[k] if k in named else f"component {k}", round(float(lo[k]), 3), round(float(hi[k]), 3),
                       float(10 ** np.floor(np.log10(max(hi[k] - lo[k], 1e-6)) - 2))) for k in keep]


@dataclass(frozen=True)
class Scene:
    """One render's inputs: identity index, expression [E] float32, mesh [V, 3] float32."""

    identity: int
    expression: np.ndarray
    vertices: np.ndarray


class ViewState:
    """The preview's mutable state (thread-safe).

    Args:
        info: the model's :class:`~fastminerf.model.avatar.CastInfo`.
        sequences: driving sequences.
    """

    def __init__(self, info, sequences: CastSequences):
        self.info, self.sequences = info, sequences
        self.lock = threading.Lock()
        self.identity = 0
        self.expression = np.zeros(info.n_expressions, np.float32)
        self.source = SLIDERS
        self.frame = 0
        self.playing = False

    def set(self, **changes) -> None:
        """Update fields (identity, expression index/value via ``coefficient=(k, v)``,
        source, frame, playing)."""
        with self.lock:
            if "coefficient" in changes:
                k, v = changes.pop("coefficient")
                self.expression = self.expression.copy()
                self.expression[k] = v
            for key, value in changes.items():
                if not hasattr(self, key):
                    raise AttributeError(key)
                setattr(self, key, value)

    def sequence_length(self) -> int:
        return 0 if self.source == SLIDERS else len(self.sequences.get(self.source))

    def advance(self) -> int:
        """Next frame of the driving sequence (wraps); returns it."""
        n = self.sequence_length()
        with self.lock:
            self.frame = (self.frame + 1) % max(n, 1)
            return self.frame

    def scene(self) -> Scene:
        """A snapshot of what to render now."""
        with self.lock:
            identity, source, frame, expression = self.identity, self.source, self.frame, self.expression.copy()
        if source == SLIDERS:
            return Scene(identity, expression, expression_mesh(self.info, identity, expression))
        e, delta = self.sequences.get(source).frame(frame)
        if delta is None:
            return Scene(identity, e, expression_mesh(self.info, identity, e))
        return Scene(identity, e, expression_mesh(self.info, identity, np.zeros_like(e)) + delta)
