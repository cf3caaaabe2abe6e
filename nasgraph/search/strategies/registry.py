"""Search strategies by name."""
from __future__ import annotations

from nasgraph.config import did_you_mean
from nasgraph.errors import ConfigError

STRATEGIES: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        if name in STRATEGIES:
            raise ValueError(f"strategy '{name}' is already registered")
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return wrap


def get(name: str) -> type:
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown search strategy '{name}'{did_you_mean(name, STRATEGIES)}; "
                          f"valid: {', '.join(sorted(STRATEGIES))}") from None
