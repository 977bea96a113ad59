"""The render thread: one slot per client, newest request wins.

A request replaces whatever its client had waiting. While the view moves (camera drags,
slider drags, playback) images are rendered small enough to keep up — the resolution is
picked from the measured render speed so that one image takes about ``moving_budget_s`` —
and once a client's requests stop for ``rest_s`` the last view is rendered again at full
resolution. A full-resolution render in flight is dropped between chunks as soon as a
newer request for its client arrives (low-resolution ones are short and finish, so a
continuous drag still shows frames).
"""
from __future__ import annotations

import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

import numpy as np

from ..render.views import RenderCancelled, ViewCamera
from .state import Scene

log = logging.getLogger("fastminerf")


@dataclass(frozen=True)
class Request:
    """Render ``scene`` seen by ``camera`` (full-resolution camera) for ``client``."""

    client: int
    camera: ViewCamera
    scene: Scene
    moving: bool
    submitted: float = 0.0


@dataclass(frozen=True)
class FrameInfo:
    """How an image was made: size, seconds, whether it was a moving (low-res) frame."""

    height: int
    width: int
    seconds: float
    moving: bool

    @property
    def fps(self) -> float:
        return 1.0 / max(self.seconds, 1e-6)


RenderFn = Callable[[Request, int, Callable[[], AbstractContextManager]], np.ndarray]
PublishFn = Callable[[Request, np.ndarray, FrameInfo], None]


class RenderWorker:
    """One thread rendering the newest request of each client.

    Args:
        render: ``render(request, size, guard) -> [H, W, 3] uint8`` (size: longer side;
            guard: enter around every chunk, it raises RenderCancelled when superseded).
        publish: called with each finished image (on the render thread).
        size: full resolution (longer side, pixels).
        rest_s: quiet time after which a moving view is re-rendered at full resolution.
        moving_budget_s: target seconds of one low-resolution image.
        min_size: smallest longer side while moving.
        outer_guard: optional context-manager factory held around every chunk (the
            training time share); None: render whenever there is work.
    """

    def __init__(self, render: RenderFn, publish: PublishFn, size: int, rest_s: float = 0.3,
                 moving_budget_s: float = 1 / 12, min_size: int = 32,
                 outer_guard: Callable[[], AbstractContextManager] | None = None):
        self.render, self.publish, self.size = render, publish, int(size)
        self.rest_s, self.moving_budget_s, self.min_size = rest_s, moving_budget_s, min(min_size, int(size))
        self.outer_guard = outer_guard or contextlib.nullcontext
        self._cond = threading.Condition()
        self._slots: dict[int, Request] = {}
        self._settle: dict[int, tuple[float, Request]] = {}
        self._running = False
        self._thread: threading.Thread | None = None
        self._busy = False
        self._sec_per_px: float | None = None
        self.rendered = 0  # images published
        self.dropped = 0  # renders abandoned for a newer request
        self.last: FrameInfo | None = None

    # ------------------------------------------------------------------ control
    def start(self) -> RenderWorker:
        self._running = True
        self._thread = threading.Thread(target=self._loop, name="fastminerf-render", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, client: int, camera: ViewCamera, scene: Scene, moving: bool = True) -> None:
        """Queue a render for ``client``, replacing its waiting one (and its pending
        full-resolution re-render)."""
        with self._cond:
            self._slots[client] = Request(client, camera, scene, moving, time.perf_counter())
            self._settle.pop(client, None)
            self._cond.notify_all()

    def forget(self, client: int) -> None:
        """Drop everything queued for a client (it disconnected)."""
        with self._cond:
            self._slots.pop(client, None)
            self._settle.pop(client, None)

    def idle(self) -> bool:
        """Nothing rendering, nothing waiting, nothing to re-render."""
        with self._cond:
            return not self._busy and not self._slots and not self._settle

    # ------------------------------------------------------------------ sizes
    def moving_size(self, camera: ViewCamera) -> int:
        """Longer side for a moving frame: about ``moving_budget_s`` of rendering at the
        measured speed, a multiple of 8 in [min_size, size]."""
        if self._sec_per_px is None:
            return max(self.min_size, self.size // 4)
        full = camera.resized(self.size)
        scale = math.sqrt(self.moving_budget_s / self._sec_per_px / (full.height * full.width))
        side = int(self.size * min(scale, 1.0)) // 8 * 8
        return int(min(self.size, max(self.min_size, side)))

    # ------------------------------------------------------------------ loop
    def _next(self) -> Request | None:
        """Wait for the oldest waiting request or a due full-resolution re-render."""
        with self._cond:
            while self._running:
                if self._slots:
                    client = min(self._slots, key=lambda c: self._slots[c].submitted)
                    self._busy = True
                    return self._slots.pop(client)
                now = time.perf_counter()
                due = [c for c, (t, _) in self._settle.items() if t <= now]
                if due:
                    self._busy = True
                    return replace(self._settle.pop(due[0])[1], moving=False)
                wait = min((t for t, _ in self._settle.values()), default=now + 3600) - now
                self._cond.wait(max(wait, 0.0))
        return None

    def _guard(self, request: Request):
        """Per-chunk guard: the outer guard (time share), and cancellation of a
        full-resolution render whose client has a newer request."""

        def superseded() -> bool:
            with self._cond:
                return not self._running or (not request.moving and request.client in self._slots)

        @contextlib.contextmanager
        def guard():
            if superseded():
                raise RenderCancelled
            with self.outer_guard():
                if superseded():
                    raise RenderCancelled
                yield

        return guard

    def _loop(self) -> None:
        while True:
            req = self._next()
            if req is None:
                return
            try:
                self._serve(req)
            finally:
                with self._cond:
                    self._busy = False

    def _serve(self, req: Request) -> None:
        """Render one request, publish it, schedule its full-resolution re-render."""
        size = self.moving_size(req.camera) if req.moving else self.size
        t0 = time.perf_counter()
        try:
            img = self.render(req, size, self._guard(req))
        except RenderCancelled:
            self.dropped += 1
            return
        except Exception:  # keep serving: a bad state must not kill the viewer
            log.exception("preview render failed")
            return
        dt = time.perf_counter() - t0
        spp = dt / max(img.shape[0] * img.shape[1], 1)
        self._sec_per_px = spp if self._sec_per_px is None else 0.7 * self._sec_per_px + 0.3 * spp
        self.last = FrameInfo(img.shape[0], img.shape[1], dt, req.moving)
        self.rendered += 1
        try:
            self.publish(req, img, self.last)
        except Exception:
            log.exception("preview publish failed")
        if req.moving:
            with self._cond:
                if req.client not in self._slots:
                    self._settle[req.client] = (time.perf_counter() + self.rest_s, req)
                    self._cond.notify_all()
