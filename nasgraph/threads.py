"""CPU threads on a shared machine: how many cores this process may use, and torch's thread count.

OpenMP threads that spin-wait (libgomp's default) steal the cores of every other process on a busy
machine, and torch's default thread count ignores CPU affinity and cgroup quotas; the CLI sets
OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS (cores available to the process) before torch loads,
each unless the user set it; `train.threads` caps it further (`set_torch_threads`).
"""
from __future__ import annotations

import math
import os
from pathlib import Path


def shared_machine_defaults() -> None:
    """OMP_WAIT_POLICY=PASSIVE and OMP_NUM_THREADS=available_cores(), each unless the user set it.

    Only effective before torch (and its OpenMP runtime) is imported: the CLI calls it first thing.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(available_cores()))


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, capped by a cgroup (v2) CPU quota."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


def thread_count(requested: int | None = None) -> int:
    """min(available cores, requested) (all available cores when nothing is requested)."""
    cores = available_cores()
    return min(cores, requested) if requested else cores


def set_torch_threads(requested: int | None = None) -> int:
    """torch.set_num_threads(thread_count(requested)); returns the count."""
    import torch

    n = thread_count(requested)
    torch.set_num_threads(n)
    return n
