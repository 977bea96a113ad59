"""Screenshot of ``fastminerf preview`` in a real headless Chromium (docs/images/preview.png).

    fastminerf preview --checkpoint RUN --port 8099 &
    python docs/preview_screenshot.py --url http://127.0.0.1:8099 --out docs/images/preview.png

Drives Chromium over the DevTools protocol: load the page, wait (real time) until the
viewer has rendered, hide viser's "software WebGL" notice, capture the page.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path


async def capture(ws_url: str, url: str, out: Path, wait: float, width: int, height: int) -> None:
    import websockets

    async with websockets.connect(ws_url, max_size=64 << 20) as ws:
        ids = iter(range(1, 1 << 30))

        async def call(method: str, **params):
            i = next(ids)
            await ws.send(json.dumps({"id": i, "method": method, "params": params}))
            while True:
                msg = json.loads(await ws.recv())
                if msg.get("id") == i:
                    return msg.get("result", {})

        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        await call("Page.navigate", url=url)
        await asyncio.sleep(wait)
        await call("Runtime.evaluate", expression=(
            "document.querySelectorAll('div').forEach(d => { if (d.textContent.startsWith('Software WebGL') && "
            "d.textContent.length < 400) d.style.display = 'none'; })"))
        await asyncio.sleep(1.0)
        shot = await call("Page.captureScreenshot", format="png")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8099")
    ap.add_argument("--out", type=Path, default=Path("docs/images/preview.png"))
    ap.add_argument("--wait", type=float, default=25.0, help="seconds to let the viewer render")
    ap.add_argument("--chromium", default="chromium")
    ap.add_argument("--size", default="1280x800")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    port = 9333
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.Popen([args.chromium, "--headless=new", "--no-sandbox", "--hide-scrollbars",
                                 f"--remote-debugging-port={port}", f"--user-data-dir={profile}", "about:blank"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
                    page = next(t for t in tabs if t["type"] == "page")
                    break
                except (OSError, StopIteration):
                    time.sleep(0.2)
            else:
                raise SystemExit("error: chromium did not open its DevTools port")
            asyncio.run(capture(page["webSocketDebuggerUrl"], args.url, args.out, args.wait, w, h))
        finally:
            proc.terminate()
            proc.wait()
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
