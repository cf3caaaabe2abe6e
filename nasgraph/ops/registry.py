"""The op registry: one entry per op, filled by the @register decorator."""
from __future__ import annotations

from typing import Any

from nasgraph.config import parse_config
from nasgraph.ops.base import Op, OpConfig
from nasgraph.registry import Registry

_REGISTRY = Registry("op", Op)


def register(name: str):
    return _REGISTRY.register(name)


def names() -> list[str]:
    return _REGISTRY.names()


def get(name: str) -> type[Op]:
    return _REGISTRY.get(name)


def parse_options(name: str, options: dict[str, Any] | None) -> OpConfig:
    return parse_config(get(name).Config, options, f"op '{name}'")
