"""One progress line with rate and ETA for every long job (training, lip-sync training,
evaluation, rendering, transfer, preview start-up, synthesis).

The line goes to stderr (stdout stays for results, e.g. ``fastminerf eval``'s JSON). On a
terminal it is live (rich, refreshed in place); otherwise a plain line is printed every
``every`` seconds and at the end, so logs of long jobs are never silent (and a job that fails
within its first ``every`` seconds leaves only its one-line error). Disabled
(``--quiet``), it prints nothing at all.

    with Progress(len(frames), "eval", unit="frame", enabled=not quiet) as bar:
        for i, f in enumerate(frames, 1):
            ...
            bar.update(i, f"psnr {p:.2f} dB")
    # eval    3/12  0.41 frame/s  psnr 27.10 dB  ETA 00:22
"""
from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live


def format_eta(seconds: float) -> str:
    """``mm:ss`` (``h:mm:ss`` from an hour on); ``--:--`` while unknown."""
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return "--:--"
    m, s = divmod(int(max(seconds, 0)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Progress:
    """Context manager for one job of ``total`` units.

    Args:
        total: units of work (steps, frames). label: first word of the line.
        unit: name of a unit in the rate (``it/s``, ``frame/s``). enabled: False prints nothing.
        every: seconds between plain lines when stdout is not a terminal. start: units already
        done when the job starts (a resumed run's step).
    ``update(done, detail)`` refreshes the line; the rate and ETA count from the first update
    (so a warm-up does not skew them) — at the first update, from ``start`` and the time the
    job started.
    """

    def __init__(self, total: int, label: str = "", unit: str = "it", enabled: bool = True, every: float = 10.0,
                 start: int = 0):
        self.total, self.label, self.unit, self.enabled, self.every = int(total), label, unit, enabled, every
        self.start = int(start)
        self.tty = sys.stderr.isatty()
        self.t0 = time.perf_counter()
        self.first: tuple[int, float] | None = None
        self.last_print = self.t0  # plain lines: the first after `every` s (a quick failure stays one line)
        self.live = None

    def __enter__(self):
        if self.enabled and self.tty:
            self.live = Live("", console=Console(stderr=True), refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def rate(self, done: int) -> float:
        """Units per second since the first update (0 while unknown)."""
        now = time.perf_counter()
        if self.first is None:
            self.first = (done, now)
            return (done - self.start) / (now - self.t0) if done > self.start and now > self.t0 else 0.0
        n, t = self.first
        return (done - n) / (now - t) if done > n and now > t else 0.0

    def line(self, done: int, detail: str = "") -> str:
        r = self.rate(done)
        eta = (self.total - done) / r if r > 0 else float("nan")
        width = len(str(self.total))
        head = f"{self.label} " if self.label else ""
        mid = f"  {detail}" if detail else ""
        return f"{head}{done:>{width}}/{self.total}  {r:6.2f} {self.unit}/s{mid}  ETA {format_eta(eta)}"

    def update(self, done: int, detail: str = "") -> None:
        if not self.enabled:
            return
        text = self.line(done, detail)
        if self.live is not None:
            self.live.update(text)
        elif time.perf_counter() - self.last_print >= self.every or done >= self.total:
            print(text, file=sys.stderr, flush=True)
            self.last_print = time.perf_counter()

    def note(self, msg: str) -> None:
        if self.enabled:
            print(msg, file=sys.stderr, flush=True)


def track(items, total: int, label: str = "", unit: str = "it", enabled: bool = True):
    """Yield from ``items`` (``total`` of them) with a progress line counting each one."""
    with Progress(total, label, unit, enabled) as bar:
        for k, item in enumerate(items, 1):
            yield item
            bar.update(k)
