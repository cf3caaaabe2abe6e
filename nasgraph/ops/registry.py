"""The op registry: one entry per op, filled by the @register decorator."""
from __future__ import annotations

from typing import Any

from nasgraph.config import did_you_mean, parse_config
from nasgraph.errors import ConfigError
from nasgraph.ops.base import Op, OpConfig

_REGISTRY: dict[str, type[Op]] = {}


def register(name: str):
    def wrap(cls: type[Op]) -> type[Op]:
        if not (isinstance(cls, type) and issubclass(cls, Op)):
            raise TypeError(f"@register('{name}'): {cls!r} is not an Op subclass")
        if name in _REGISTRY:
            raise ValueError(f"op '{name}' is already registered by {_REGISTRY[name].__module__}")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return wrap


def names() -> list[str]:
    return sorted(_REGISTRY)


def get(name: str) -> type[Op]:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ConfigError(f"unknown op '{name}'{did_you_mean(name, _REGISTRY)}; valid: {', '.join(names())}") from None


def parse_options(name: str, options: dict[str, Any] | None) -> OpConfig:
    return parse_config(get(name).Config, options, f"op '{name}'")
