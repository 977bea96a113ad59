"""Memory policy: caches bounded in bytes, with a default taken from the memory available.

Every cache of fastminerf that grows with the data (the per-frame BVHs of
:mod:`fastminerf.ops.embed`) is a :class:`ByteLRU`: entries carry their size in bytes and the
least recently used ones are dropped once the total would pass the cap. Caches that do not
grow with the data stay as they are (``functools.lru_cache`` of a few mel filterbanks, one
speech decoder; the GPU vertex copy of :mod:`fastminerf.model.frames`, itself capped in bytes).

:func:`available_bytes` is what this process may still allocate: ``MemAvailable`` of
``/proc/meminfo``, or less when a cgroup memory limit leaves less (limit − current usage).
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path

MiB = 1 << 20
#: share of the available memory a cache takes by default
DEFAULT_SHARE = 0.25
#: largest default cap (a larger one is set explicitly, e.g. train.mesh_cache_mb)
DEFAULT_MAX_BYTES = 4096 * MiB
#: used when nothing can be read (not Linux)
FALLBACK_BYTES = 1024 * MiB


def _meminfo_available(path: str | Path = "/proc/meminfo") -> int | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room(root: str | Path = "/sys/fs/cgroup") -> int | None:
    """Bytes left under the cgroup memory limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), or None when there is no limit."""
    root = Path(root)
    for limit_f, usage_f in (("memory.max", "memory.current"),
                             ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            raw = (root / limit_f).read_text().strip()
            if raw == "max" or int(raw) >= 1 << 60:  # v1 reports "no limit" as a huge number
                return None
            return max(0, int(raw) - int((root / usage_f).read_text().strip()))
        except (OSError, ValueError):
            continue
    return None


def available_bytes(meminfo: str | Path = "/proc/meminfo", cgroup: str | Path = "/sys/fs/cgroup") -> int | None:
    """Bytes this process may still allocate: min(MemAvailable, cgroup limit − usage); None
    when neither can be read."""
    found = [b for b in (_meminfo_available(meminfo), _cgroup_room(cgroup)) if b is not None]
    return min(found) if found else None


def default_cache_bytes(available: int | None = None) -> int:
    """Default cap of a data-sized cache: :data:`DEFAULT_SHARE` of the available memory, at
    most :data:`DEFAULT_MAX_BYTES` (:data:`FALLBACK_BYTES` when it cannot be read)."""
    available = available_bytes() if available is None else available
    if available is None:
        return FALLBACK_BYTES
    return int(min(DEFAULT_SHARE * available, DEFAULT_MAX_BYTES))


@functools.cache
def process_default_bytes() -> int:
    """:func:`default_cache_bytes` read once per process (so every run of it says the same)."""
    return default_cache_bytes()


def cap_bytes(megabytes: float | None) -> int:
    """A cap in bytes from a config value in MB (None → :func:`process_default_bytes`)."""
    return process_default_bytes() if megabytes is None else int(megabytes * MiB)


class ByteLRU:
    """A least-recently-used mapping bounded by the total bytes of its values.

    ``put(key, value, nbytes)`` stores a value with its size; entries are evicted oldest-used
    first while the total exceeds ``capacity`` bytes. A value larger than the whole cap is
    not stored (capacity 0 turns the cache off). ``get`` marks an entry as recently used.
    """

    def __init__(self, capacity: int):
        self._items: OrderedDict = OrderedDict()  # key -> (value, nbytes)
        self.capacity = int(capacity)
        self.nbytes = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable):
        """The value under ``key`` (now the most recently used), or None."""
        item = self._items.get(key)
        if item is None:
            return None
        self._items.move_to_end(key)
        return item[0]

    def put(self, key: Hashable, value, nbytes: int) -> None:
        if key in self._items:
            self.nbytes -= self._items.pop(key)[1]
        if nbytes > self.capacity:
            return
        self._items[key] = (value, int(nbytes))
        self.nbytes += int(nbytes)
        self._shrink()

    def resize(self, capacity: int) -> None:
        """Set a new cap (bytes), evicting what no longer fits."""
        self.capacity = int(capacity)
        self._shrink()

    def clear(self) -> None:
        self._items.clear()
        self.nbytes = 0

    def _shrink(self) -> None:
        while self.nbytes > self.capacity and self._items:
            self.nbytes -= self._items.popitem(last=False)[1][1]
            self.evictions += 1
