"""The backend contract: `map(fn, items)` in order, resources per trial, open and close."""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

from nasgraph.errors import ConfigError


class TrialBackend:
    """Runs independent calls `fn(item)`; results come back in the items' order.

    `fn` and the items must be picklable (a module-level function or a functools.partial of one) for a
    backend that runs them in other processes. `threads` is the torch thread count each trial should
    use (None: the trial's own `train.threads`): a trial's numbers depend on it, so a backend that
    runs trials on one CPU each says 1. `remote`: trials run in other processes (their own progress
    bars are hidden; the backend shows one for the batch). `device`: where each trial trains when the
    backend places it (e.g. "cuda" for a trial holding a GPU share), None: the search's train.device.
    """

    name: ClassVar[str] = ""
    threads: int | None = None
    remote: bool = False
    device: str | None = None

    def __init__(self, workers: int | None = None, address: str | None = None, gpus_per_trial: float | None = None):
        self.check(workers, address, gpus_per_trial)
        self.workers, self.address, self.gpus_per_trial = workers, address, gpus_per_trial

    @classmethod
    def check(cls, workers: int | None, address: str | None, gpus_per_trial: float | None = None) -> None:
        """Reject options this backend does not take (ConfigError keyed by the option)."""

    def open(self) -> "TrialBackend":
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> "TrialBackend":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def map(self, fn: Callable[[Any], dict], items: Sequence[Any], *, names: Sequence[str], desc: str,
            progress: bool, folder=None) -> list[dict]:
        """[fn(item) for item in items], possibly concurrently; `names` label the items in progress and
        errors; `folder` is where the backend may keep its own logs."""
        raise NotImplementedError


def reject(option: str, value, backend: str, hint: str) -> None:
    """ConfigError for an option the backend does not take."""
    if value is not None:
        raise ConfigError(f"{option} {value!r} does not apply to backend '{backend}' ({hint})", key=option)
