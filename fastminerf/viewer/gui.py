"""The preview's control panel (viser GUI): identity, "expressions from", play/pause and
frame, expression sliders, the training share, and the FPS / resolution readout.

Every control writes into the :class:`~fastminerf.viewer.state.ViewState` and calls
``changed(moving)``; values set here programmatically (playback, "copy to sliders") do not
echo back as user changes.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from .state import SLIDERS, ViewState, slider_specs
from .worker import FrameInfo


class Controls:
    """Build the panel on ``gui`` (a viser GUI API) for ``state``.

    Args:
        changed: ``changed(moving: bool)`` — re-render all clients (moving: low resolution
            first). timeshare: the training time share (adds the training controls).
        status: optional callable → extra readout text (e.g. the training step).
    """

    def __init__(self, gui, state: ViewState, changed: Callable[[bool], None], timeshare=None,
                 status: Callable[[], str] | None = None, audio=None):
        self.state, self.changed, self.status, self.audio = state, changed, status, audio
        self._local = threading.local()  # quiet depth per thread: a user's change on another thread still counts
        info = state.info
        self.identity = gui.add_dropdown("identity", tuple(info.names), initial_value=info.names[0],
                                         hint="any identity of the model")
        self.source = gui.add_dropdown("expressions from", (SLIDERS, *state.sequences.names), initial_value=SLIDERS,
                                       hint="drive the identity with the sliders or with a sequence (live transfer)")
        self.play = gui.add_button("play", disabled=True, hint="play / pause the driving sequence")
        self.frame = gui.add_slider("frame", min=0, max=1, step=1, initial_value=0, disabled=True)
        self.copy = gui.add_button("copy frame to sliders", disabled=True)
        self.upload = None
        if audio is not None:  # a lip-sync model: speech becomes a driving sequence
            self.upload = gui.add_upload_button("drive with audio", hint="a wav / mp3 / mp4 with speech: the lip-sync "
                                                "model turns it into a sequence for the selected identity")
            self.upload.on_upload(lambda event: self.add_audio(event.target.value.name, event.target.value.content))
        self.sliders = {}
        with gui.add_folder("expression"):
            if info.expression_basis is None:
                gui.add_markdown("*This checkpoint has no expression basis: the sliders change the conditioning "
                                 "only; the mesh stays the identity's neutral mesh.*")
            for spec in slider_specs(info):
                self.sliders[spec.index] = gui.add_slider(spec.label, min=spec.lo, max=spec.hi, step=spec.step,
                                                          initial_value=float(np.clip(0.0, spec.lo, spec.hi)))
            self.reset = gui.add_button("neutral")
        self.share = None
        if timeshare is not None:
            with gui.add_folder("training"):
                self.share = gui.add_slider("render share", min=0.0, max=timeshare.MAX_SHARE, step=0.05,
                                            initial_value=round(timeshare.share, 2),
                                            hint="share of the time spent rendering the preview instead of training")
            self.share.on_update(lambda _: timeshare.set_share(self.share.value))
        self.readout = gui.add_markdown("waiting for the first image…")
        e = np.zeros(info.n_expressions, np.float32)
        for k, s in self.sliders.items():
            e[k] = s.value
        state.set(expression=e)
        self._wire()

    # ------------------------------------------------------------------ wiring
    def _wire(self) -> None:
        self.identity.on_update(self._user(lambda: self.state.set(identity=self.state.info.names.index(self.identity.value))))
        self.source.on_update(self._user(self._select_source))
        self.frame.on_update(self._user(lambda: self.state.set(frame=int(self.frame.value))))
        self.play.on_click(lambda _: self._toggle_play())
        self.copy.on_click(lambda _: self._copy_frame())
        self.reset.on_click(lambda _: self._neutral())
        for k, s in self.sliders.items():
            s.on_update(self._user(lambda k=k, s=s: self.state.set(coefficient=(k, s.value))))

    def _user(self, apply: Callable[[], None]):
        """A callback that applies a user change and re-renders (ignored while quiet)."""

        def cb(_event) -> None:
            if getattr(self._local, "quiet", 0):
                return
            apply()
            self.changed(True)

        return cb

    @contextlib.contextmanager
    def quiet(self):
        """Set control values without treating them as user changes (viser calls the
        update callbacks of server-side changes synchronously, on this thread)."""
        self._local.quiet = getattr(self._local, "quiet", 0) + 1
        try:
            yield
        finally:
            self._local.quiet -= 1

    def _select_source(self) -> None:
        name = self.source.value
        self.state.set(source=name, frame=0, playing=False)
        n = self.state.sequence_length()
        with self.quiet():
            self.frame.max = max(n - 1, 1)
            self.frame.value = 0
        self._set_driven(name != SLIDERS)

    def _set_driven(self, driven: bool) -> None:
        """Enable the sequence controls (driven) or the expression sliders."""
        self.play.label = "play"
        for h in (self.play, self.frame, self.copy):
            h.disabled = not driven
        for s in self.sliders.values():
            s.disabled = driven

    def _toggle_play(self) -> None:
        playing = not self.state.playing and self.state.source != SLIDERS
        self.state.set(playing=playing)
        self.play.label = "pause" if playing else "play"
        if not playing:
            self.changed(False)

    def _copy_frame(self) -> None:
        """The current frame's expression onto the sliders; the sliders drive again."""
        e = self.state.scene().expression
        self.state.set(source=SLIDERS, playing=False, expression=e.copy())
        with self.quiet():
            self.source.value = SLIDERS
            for k, s in self.sliders.items():
                s.value = float(np.clip(e[k], s.min, s.max))
        self._set_driven(False)
        self.changed(False)

    def _neutral(self) -> None:
        self.state.set(expression=np.zeros(self.state.info.n_expressions, np.float32))
        with self.quiet():
            for s in self.sliders.values():
                s.value = float(np.clip(0.0, s.min, s.max))
        self.changed(False)

    def add_audio(self, filename: str, content: bytes) -> str | None:
        """Turn an uploaded audio file into a sequence and drive with it (errors go to the readout)."""
        try:
            name = self.audio.add_upload(filename, content)
        except InputError as e:
            self.readout.content = f"**audio not used**: {e.problem}"
            return None
        self.source.options = (SLIDERS, *self.state.sequences.names)
        self.source.value = name  # as if the user picked it: the callback selects and re-renders
        return name

    # ------------------------------------------------------------------ outputs
    def show_frame(self, frame: int) -> None:
        """Playback moved to ``frame``."""
        with self.quiet():
            self.frame.value = int(frame)

    def show_stats(self, info: FrameInfo) -> None:
        """FPS / resolution readout of the latest image."""
        mode = "moving" if info.moving else "full"
        text = f"**{info.fps:.1f} FPS** ({1000 * info.seconds:.0f} ms) · {info.width}×{info.height} · {mode}"
        if self.status is not None:
            text += f"  \n{self.status()}"
        self.readout.content = text
