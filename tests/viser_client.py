"""A minimal client of viser's websocket protocol (viser 1.1.1), for tests without a browser.

Wire format, read from viser/infra/_infra.py: the client opens the socket with the
subprotocol ``viser-v<version>`` and sends each message as one msgpack map with a ``type``
key (the message class name) and the dataclass fields. The server sends windows of
messages: [8 B inner length][8 B compressed length][zstd(msgpack {"messages": [...],
"binaryBufferLengths": [...]})][8-byte aligned raw buffers]. Bytes fields (images) travel
inline in the msgpack; numpy arrays (not used here) as trailing buffers.
"""
from __future__ import annotations

import asyncio
import io
import time

import msgspec
import numpy as np
import websockets
import zstandard


def decode_window(raw: bytes) -> list[dict]:
    """The messages of one server → client websocket frame."""
    n_inner = int.from_bytes(raw[:8], "little")
    n_comp = int.from_bytes(raw[8:16], "little")
    inner = zstandard.ZstdDecompressor().decompress(raw[16 : 16 + n_comp], max_output_size=n_inner)
    return list(msgspec.msgpack.decode(inner)["messages"])


class ViserTestClient:
    """Connects to a viser server like the web page does; collects GUI handles by label
    and background images."""

    def __init__(self, port: int):
        import viser

        self.url = f"ws://127.0.0.1:{port}"
        self.subprotocol = f"viser-v{viser.__version__}"
        self.ws = None
        self.gui: dict[str, dict] = {}  # label → creation message
        self.props: dict[str, dict] = {}  # uuid → latest properties the server sent (value, label, ...)
        self.images: list[np.ndarray] = []

    async def __aenter__(self):
        self.ws = await websockets.connect(self.url, subprotocols=[self.subprotocol], max_size=None)
        return self

    async def __aexit__(self, *exc):
        await self.ws.close()

    async def send(self, type_: str, **fields) -> None:
        await self.ws.send(msgspec.msgpack.encode({"type": type_, **fields}))

    async def send_camera(self, wxyz, position, fov: float, width: int, height: int) -> None:
        await self.send("ViewerCameraMessage", wxyz=[float(v) for v in wxyz], position=[float(v) for v in position],
                        fov=float(fov), near=0.01, far=100.0, image_height=int(height), image_width=int(width), look_at=[0.0, 0.0, 0.0], up_direction=[0.0, 1.0, 0.0])

    async def set_gui(self, label: str, value) -> None:
        """What the page sends when the user moves a control."""
        await self.send("GuiUpdateMessage", uuid=self.gui[label]["uuid"], updates={"value": value})

    async def click(self, label: str) -> None:
        """What the page sends when the user clicks a button."""
        await self.set_gui(label, True)

    def prop(self, label: str, name: str, default=None):
        """A control's latest property as the page knows it."""
        msg = self.gui[label]
        return self.props.get(msg["uuid"], {}).get(name, msg.get(name, msg["props"].get(name, default)))

    def _take(self, msg: dict) -> None:
        t = msg.get("type", "")
        if t.startswith("Gui") and t.endswith("Message") and "props" in msg and "uuid" in msg:
            label = msg["props"].get("label")
            if label is not None:
                self.gui[label] = msg
        elif t == "GuiUpdateMessage":
            self.props.setdefault(msg["uuid"], {}).update(msg["updates"])
        elif t == "BackgroundImageMessage" and msg.get("rgb_data"):
            from PIL import Image

            self.images.append(np.asarray(Image.open(io.BytesIO(msg["rgb_data"])).convert("RGB")))

    async def pump(self, until, timeout: float = 60.0) -> None:
        """Read messages until ``until()`` is true (TimeoutError after ``timeout`` s)."""
        end = time.monotonic() + timeout
        while not until():
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message from the viewer")
            raw = await asyncio.wait_for(self.ws.recv(), left)
            if isinstance(raw, bytes):
                for m in decode_window(raw):
                    self._take(m)

    async def next_image(self, shape: tuple[int, int], timeout: float = 60.0) -> np.ndarray:
        """The next background image of ``shape`` (H, W) — a full-resolution frame."""
        start = len(self.images)

        def found():
            return any(im.shape[:2] == shape for im in self.images[start:])

        await self.pump(found, timeout)
        return next(im for im in self.images[start:] if im.shape[:2] == shape)
