"""CPU thread policy: how many threads, and how they wait.

Two torch processes that each spin-wait on every core of a shared machine slow each other
~10× (measured: benchmarks/results/threads.md): OpenMP workers busy-wait between parallel
regions, burning the cores the other process needs. :func:`passive_waiting` sets
``OMP_WAIT_POLICY=PASSIVE`` (idle workers sleep), which must happen before torch loads its
OpenMP runtime — ``fastminerf/__init__.py`` calls it first thing. :func:`usable_cores`
counts the cores this process may really use: the smallest of its CPU affinity, the cgroup
CPU quota and ``OMP_NUM_THREADS``.
"""
from __future__ import annotations

import math
import os
from pathlib import Path


def passive_waiting() -> None:
    """OMP_WAIT_POLICY=PASSIVE unless the user set a policy (call before importing torch)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cgroup_cpus(root: str | Path = "/sys/fs/cgroup") -> float | None:
    """CPUs allowed by the cgroup quota (v2 ``cpu.max`` or v1 ``cfs_quota/period``), or None."""
    root = Path(root)
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None


def usable_cores() -> int:
    """Cores this process may use: min(affinity, ceil(cgroup quota), OMP_NUM_THREADS), ≥ 1."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    quota = cgroup_cpus()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    omp = os.environ.get("OMP_NUM_THREADS", "")
    if omp.isdigit() and int(omp) > 0:
        n = min(n, int(omp))
    return max(1, n)
