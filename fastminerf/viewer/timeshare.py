"""Training and previewing on one model: steps and render chunks take turns on one lock.

The trainer holds :meth:`TimeShare.training` around every step; the preview holds
:meth:`TimeShare.rendering` around every chunk of rays. A training step earns the
renderer ``share / (1 − share)`` of its duration as credit; a waiting renderer spends it
between steps (a chunk may overdraw, the debt is repaid by the next steps). Credit is not
banked while nobody renders, so a burst of rendering never holds training up for more than
about one step's worth; with no training running (finished, not started) rendering is free.
"""
from __future__ import annotations

import contextlib
import threading
import time


class TimeShare:
    """A lock shared by a trainer and a renderer, with a time budget for the renderer.

    Args:
        share: fraction of the time given to rendering while training, in [0, 0.9]
            (0: the preview waits for training to finish).
    """

    MAX_SHARE = 0.9

    def __init__(self, share: float = 0.25):
        self._cond = threading.Condition()
        self._busy = False
        self._credit = 0.0
        self._waiting = 0
        self.share = 0.0
        self.set_share(share)
        self.training_active = True
        self.train_seconds = 0.0
        self.render_seconds = 0.0

    def set_share(self, share: float) -> None:
        with self._cond:
            self.share = min(max(float(share), 0.0), self.MAX_SHARE)
            self._cond.notify_all()

    def close(self) -> None:
        """Training is over: rendering no longer waits for credit."""
        with self._cond:
            self.training_active = False
            self._cond.notify_all()

    def _render_allowed(self) -> bool:
        return not self._busy and (not self.training_active or self._credit > 0)

    @contextlib.contextmanager
    def training(self):
        """Hold around one training step (yields first to a renderer that has credit)."""
        with self._cond:
            self.training_active = True
            self._cond.wait_for(lambda: not self._busy and not (self._waiting and self._credit > 0))
            self._busy = True
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._cond:
                # debts carry over, unspent credit does not (no banking while nobody renders)
                self._credit = min(self._credit, 0.0) + self.share / (1 - self.share) * dt
                self.train_seconds += dt
                self._busy = False
                self._cond.notify_all()

    @contextlib.contextmanager
    def rendering(self):
        """Hold around one render chunk (waits for credit while training runs)."""
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(self._render_allowed)
            finally:
                self._waiting -= 1
            self._busy = True
        t0 = time.perf_counter()
        try:
            yield
        finally:
            dt = time.perf_counter() - t0
            with self._cond:
                if self.training_active:
                    self._credit -= dt
                self.render_seconds += dt
                self._busy = False
                self._cond.notify_all()
