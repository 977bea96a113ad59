"""One live progress line: step, it/s, rays/s, loss, PSNR, ETA (rich when on a terminal)."""
from __future__ import annotations

import sys
import time

from rich.live import Live


class Progress:
    """Context manager; ``update(step, **figures)`` refreshes the line (plain prints every
    ~10 s when stdout is not a terminal; nothing when disabled)."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.tty = sys.stdout.isatty()
        self.t0 = time.perf_counter()
        self.first_step = None
        self.last_print = 0.0
        self.live = None

    def __enter__(self):
        if self.enabled and self.tty:
            self.live = Live("", refresh_per_second=4, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)

    def line(self, step: int, loss: float, psnr: float, rays_per_s: float, samples: int, eval_psnr=None) -> str:
        now = time.perf_counter()
        if self.first_step is None:
            self.first_step, self.t_first = step, now
        done = step - self.first_step
        its = done / max(now - self.t_first, 1e-9) if done else 0.0
        eta = (self.total - step) / its if its > 0 else float("nan")
        ev = f"  eval {eval_psnr:5.2f} dB" if eval_psnr is not None else ""
        return (f"step {step:>7}/{self.total}  {its:6.2f} it/s  {rays_per_s / 1e3:7.1f}k rays/s  "
                f"{samples / 1e3:6.1f}k samples  loss {loss:.4f}  psnr {psnr:5.2f} dB{ev}  ETA {_fmt(eta)}")

    def update(self, step: int, **fig) -> None:
        if not self.enabled:
            return
        text = self.line(step, **fig)
        if self.live is not None:
            self.live.update(text)
        elif time.perf_counter() - self.last_print > 10 or step == self.total:
            print(text, flush=True)
            self.last_print = time.perf_counter()

    def note(self, msg: str) -> None:
        if self.enabled:
            print(msg, flush=True)


def _fmt(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "--:--"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"
