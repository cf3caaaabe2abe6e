"""Graph ops (embedding, norm, ffn, add, dropout, pool, head; attention is the choice-point op).

Adding an op = one new file here with an `@register("name")` Op subclass.
"""
import importlib
import pkgutil

from nasgraph.ops.base import ModelContext, Op, OpConfig, Shape, ShapeError
from nasgraph.ops.registry import get, names, parse_options, register

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"base", "registry"} and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["ModelContext", "Op", "OpConfig", "Shape", "ShapeError", "get", "names", "parse_options", "register"]
