"""The task registry: one entry per kind, filled by the @register decorator."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from nasgraph.config import parse_config
from nasgraph.errors import ConfigError
from nasgraph.plugins import GROUPS
from nasgraph.registry import Registry
from nasgraph.tasks.base import Task, TaskConfig, TaskData

def _check(cls) -> None:
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, TaskConfig)):
        raise TypeError(f"task '{cls.__name__}': Config must subclass TaskConfig")


_REGISTRY = Registry("task kind", Task, name_attr="kind", key="kind", group=GROUPS["task kind"], check=_check)


def register(kind: str):
    """Class decorator: register a Task subclass under `kind` (its Config must subclass TaskConfig)."""
    return _REGISTRY.register(kind)


def kinds() -> list[str]:
    """Registered task kinds, sorted."""
    return _REGISTRY.names()


def get(kind: str) -> type[Task]:
    """The class registered as `kind`; ConfigError listing the valid kinds otherwise."""
    return _REGISTRY.get(kind)


def parse_task(raw: dict[str, Any], base_dir: str | Path | None = None) -> TaskConfig:
    """Validate a spec's `task:` mapping into the kind's typed config.

    Relative `path`/`*_path` options are resolved against `base_dir` (e.g. the spec's folder) when
    given. vocab_size / num_classes, when present, must equal the task's own (ConfigError otherwise).

    Example:
        >>> parse_task({"kind": "listops", "max_len": 101, "min_len": 20, "max_depth": 3}).n_train
        96000
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"task: expected a mapping with 'kind' (one of {', '.join(kinds())}), got {raw!r:.80}")
    if "kind" not in raw:
        raise ConfigError(f"task: missing 'kind'; valid: {', '.join(kinds())}", key="kind")
    raw = dict(raw)
    if base_dir is not None:
        for key, value in raw.items():
            if (key == "path" or key.endswith("_path")) and isinstance(value, str) and value:
                raw[key] = str(Path(base_dir) / value)
    kind = raw["kind"]
    config = parse_config(get(kind).Config, raw, f"task '{kind}'")
    task = get(kind)(config)                       # runs the kind's cross-field checks
    for key, actual in (("vocab_size", task.vocab_size), ("num_classes", task.num_classes)):
        given = getattr(config, key)
        if given is not None and given != actual():
            raise ConfigError(f"task '{kind}': {key} {given} disagrees with the task's {actual()}; "
                              f"drop {key} or set it to {actual()}", key=key)
    return config


def load_task(config: TaskConfig) -> TaskData:
    """Build (or read) the task's data: splits, vocabulary, class names, tokenizer dict."""
    return get(config.kind)(config).load()


def vocab_size(config: TaskConfig) -> int:
    """The task's vocabulary size (<pad> and <cls> included), without building its data."""
    return get(config.kind)(config).vocab_size()


def num_classes(config: TaskConfig) -> int:
    """The task's number of classes, without building its data."""
    return get(config.kind)(config).num_classes()
