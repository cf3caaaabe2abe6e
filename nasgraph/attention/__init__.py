"""Attention types: `names()`, `build(name, d_model, n_heads, ...)`, one module per type.

Adding a type = one new file in this package with an `@register("name")` class; it is imported here
automatically and the parametrized tests pick it up.
"""
import importlib
import pkgutil

from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import build, get, names, parse_options, register

_INFRA = {"base", "registry", "contract"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRA and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["Attention", "AttentionConfig", "Capabilities", "build", "get", "names", "parse_options",
           "register"]
