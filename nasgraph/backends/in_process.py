"""The default backend: each trial in this process, one after another (no extra dependency)."""
from __future__ import annotations

from tqdm.auto import tqdm

from nasgraph.backends.base import TrialBackend, reject
from nasgraph.backends.registry import register


@register("in-process")
class InProcess(TrialBackend):
    @classmethod
    def check(cls, workers, address, gpus_per_trial=None) -> None:
        if workers not in (None, 1):
            reject("workers", workers, cls.name, "it runs one trial at a time; use backend ray for more")
        reject("address", address, cls.name, "it needs no cluster; use backend ray")
        reject("gpus_per_trial", gpus_per_trial, cls.name, "its trials train on train.device; use backend ray")

    def map(self, fn, items, *, names, desc, progress, folder=None) -> list[dict]:
        return [fn(item) for item in tqdm(items, desc=desc, disable=not progress)]
