"""The preview server: a viser web app whose background image is our render.

Each browser tab is a client with its own camera (orbit / zoom in the page); the controls
are shared. Camera moves and control changes become render requests for the
:class:`~fastminerf.viewer.worker.RenderWorker`; finished images go back to their client
as the scene's background image. A playback thread steps the driving sequence.
"""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import numpy as np

from ..errors import InputError
from ..extras import require
from ..render.views import render_view
from .camera import HOME_FOV, camera_from_client, home_view
from .gui import Controls
from .sequences import CastSequences
from .state import ViewState
from .worker import FrameInfo, RenderWorker, Request

log = logging.getLogger("fastminerf")


def import_viser():
    """viser, or a one-line error naming the extra to install."""
    return require("viser", "preview", "the preview")


def check_port(host: str, port: int) -> None:
    """Raise InputError when ``host:port`` cannot be bound (busy, or a bad host); port 0 is
    always fine (the system picks a free one)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise InputError(None, f"cannot listen on host {host!r} ({e.strerror})") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will (TIME_WAIT is not busy)
        try:
            s.bind(addr)
        except OSError as e:
            if port:
                raise InputError(None, f"port {port} on {host} is busy ({e.strerror}); pick another with --port") from None
            raise InputError(None, f"cannot listen on {host} ({e.strerror})") from None


def preview_chunk(avatar) -> int:
    """Rays per preview render chunk: the config's chunk on a GPU; 4096 on a CPU, where a
    chunk takes long enough to matter for dropping superseded renders and for the
    training time share."""
    return avatar.rc.chunk if avatar.canonical.device.type == "cuda" else 4096


class PreviewServer:
    """Serve the preview of ``avatar``.

    Args:
        avatar: the model (read-only here; during training, guarded by ``timeshare``).
        sequences: driving sequences for "expressions from".
        host, port: where to listen (port 0: any free port; see :attr:`port`).
        size: full resolution (longer side, pixels).
        timeshare: a :class:`~fastminerf.viewer.timeshare.TimeShare` when the model is
            being trained (every render chunk runs under it).
        status: optional callable → extra readout text.
        image_format: "jpeg" (default) or "png" for the images sent to the browser.
        chunk: rays per render chunk (cancellation and time-share granularity).
        audio: an :class:`~fastminerf.viewer.audio.AudioDriver` (adds the "drive with audio" upload).
    """

    def __init__(self, avatar, sequences: CastSequences, host: str = "127.0.0.1", port: int = 8080, size: int = 256,
                 timeshare=None, status: Callable[[], str] | None = None, image_format: str = "jpeg",
                 chunk: int | None = None, audio=None):
        self.avatar, self.host, self.requested_port, self.size = avatar, host, int(port), int(size)
        self.timeshare, self.status, self.image_format = timeshare, status, image_format
        self.audio = audio
        self.chunk = chunk or preview_chunk(avatar)
        self.state = ViewState(avatar.info, sequences)
        self.viser = None
        self.controls: Controls | None = None
        self.worker = RenderWorker(self._render, self._publish, self.size,
                                   outer_guard=None if timeshare is None else timeshare.rendering)
        self._running = False
        self._player: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> PreviewServer:
        """Bind, build the page and start the render and playback threads.

        Raises:
            InputError: the port is busy or the host cannot be bound; viser is missing.
        """
        if self.size < 8:
            raise InputError(None, f"--size must be at least 8 pixels, got {self.size}")
        viser = import_viser()
        check_port(self.host, self.requested_port)
        server = viser.ViserServer(host=self.host, port=self.requested_port, label="fastminerf preview", verbose=False)
        if self.requested_port and server.get_port() != self.requested_port:  # taken between the check and the bind
            server.stop()
            raise InputError(None, f"port {self.requested_port} on {self.host} is busy; pick another with --port")
        self.viser = server
        self._setup_scene(server)
        self.controls = Controls(server.gui, self.state, self._changed, self.timeshare, self.status, self.audio)
        self.worker.start()
        self._running = True
        self._player = threading.Thread(target=self._play, name="fastminerf-playback", daemon=True)
        self._player.start()
        server.on_client_connect(self._on_connect)
        server.on_client_disconnect(lambda client: self.worker.forget(client.client_id))
        return self

    def stop(self) -> None:
        self._running = False
        self.worker.stop()
        if self._player is not None:
            self._player.join(timeout=2)
        if self.viser is not None:
            self.viser.stop()
            self.viser = None

    def __enter__(self) -> PreviewServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        return self.viser.get_port() if self.viser is not None else self.requested_port

    @property
    def url(self) -> str:
        host = "localhost" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ scene and clients
    def _setup_scene(self, server) -> None:
        server.gui.configure_theme(control_width="medium", show_logo=False, show_share_button=False, dark_mode=False)
        server.scene.set_up_direction("+y")  # head space: +y up, +z out of the face
        position, target = home_view(self.avatar.info)
        cam = server.initial_camera
        cam.fov, cam.position, cam.look_at, cam.up = HOME_FOV, tuple(position), tuple(target), (0.0, 1.0, 0.0)
        cam.near, cam.far = 0.01, 100.0

    def _on_connect(self, client) -> None:
        client.camera.on_update(lambda _cam: self._submit(client, moving=True))
        self._submit(client, moving=False)

    def _submit(self, client, moving: bool) -> None:
        cam = client.camera
        if cam.image_width <= 0 or cam.image_height <= 0:
            return
        camera = camera_from_client(cam.wxyz, cam.position, cam.fov, cam.image_width, cam.image_height, self.size)
        self.worker.submit(client.client_id, camera, self.state.scene(), moving)

    def _changed(self, moving: bool) -> None:
        """The state changed: re-render every client."""
        if self.viser is None:
            return
        for client in self.viser.get_clients().values():
            self._submit(client, moving)

    # ------------------------------------------------------------------ rendering
    def _render(self, req: Request, size: int, guard) -> np.ndarray:
        s = req.scene
        return render_view(self.avatar, req.camera, s.identity, s.expression, None, size,
                           vertices=s.vertices, chunk=self.chunk, guard=guard)

    def _publish(self, req: Request, image: np.ndarray, info: FrameInfo) -> None:
        client = self.viser.get_clients().get(req.client) if self.viser is not None else None
        if client is None:
            return
        client.scene.set_background_image(image, format=self.image_format, jpeg_quality=90)
        client.flush()
        if self.controls is not None:
            self.controls.show_stats(info)

    def _play(self) -> None:
        """Step the driving sequence at its frame rate while playing."""
        while self._running:
            state = self.state
            if state.playing and state.sequence_length():
                fps = state.sequences.get(state.source).fps
                frame = state.advance()
                self.controls.show_frame(frame)
                self._changed(True)
                time.sleep(1.0 / max(fps, 1.0))
            else:
                time.sleep(0.05)
