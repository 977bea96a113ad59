"""What a resumed run may change: ``--set``/``--config`` given with ``--resume``.

A resumed run continues with the checkpoint's own config (thread count included), so it
continues exactly. Values given again on the command line are compared with it: those that
only move the end or the saving of the run (:data:`SAFE`) are applied and reported; any
other difference is refused in one line (it would silently not apply, or break exactness).
"""
from __future__ import annotations

from pathlib import Path

from ..config import Config, apply_overrides, load_config
from ..errors import InputError

#: keys a resumed run may change (they move where it stops, how often it saves, how much it caches)
SAFE = ("train.steps", "train.max_minutes", "train.save_every", "train.mesh_cache_mb")
#: keys that do not matter for the comparison (the preset's name)
IGNORED = ("name",)


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def resume_config(saved: Config, preset: str | Path | None, overrides: list[str] | None,
                  source: str | Path) -> tuple[Config, list[str]]:
    """(config to continue with, ``key=value`` changes applied) for a run resumed from a
    checkpoint whose config is ``saved``; ``preset``/``overrides`` are what the command line
    gave (None / [] when nothing). Raises InputError (naming ``source``) for an unsafe change."""
    if preset is None and not overrides:
        return saved, []
    wanted = load_config(preset) if preset is not None else Config.from_dict(saved.to_dict())
    apply_overrides(wanted, overrides)
    old, new = _flat(saved.to_dict()), _flat(wanted.to_dict())
    changed = sorted(k for k in new if k not in IGNORED and new[k] != old.get(k))
    unsafe = [k for k in changed if k not in SAFE]
    if unsafe:
        shown = ", ".join(f"{k}={new[k]!r} (run has {old.get(k)!r})" for k in unsafe[:4])
        raise InputError(source, f"--resume continues the run's own config; cannot change {shown}"
                                 f"{' ...' if len(unsafe) > 4 else ''} (only {', '.join(SAFE)} may change)")
    out = Config.from_dict(saved.to_dict())
    apply_overrides(out, [f"{k}={'null' if new[k] is None else new[k]}" for k in changed])
    return out, [f"{k}={new[k]}" for k in changed]
