"""Trial backends by name (`search.backend`, `--backend`)."""
from __future__ import annotations

from nasgraph.backends.base import TrialBackend
from nasgraph.registry import Registry

BACKENDS = Registry("trial backend", TrialBackend, key="backend")
register, get = BACKENDS.register, BACKENDS.get


def open_backend(name: str = "in-process", workers: int | None = None, address: str | None = None,
                 gpus_per_trial: float | None = None) -> TrialBackend:
    """The backend `name` with its options checked, not yet started (use it as a context manager)."""
    return get(name)(workers=workers, address=address, gpus_per_trial=gpus_per_trial)
