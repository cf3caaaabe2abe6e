"""Search strategies: darts, gdas, fixed (DARTFormer). One file each, imported here automatically;
`get(name)` returns the class."""
import importlib
import pkgutil

from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import STRATEGIES, get

for _info in pkgutil.iter_modules(__path__):
    if _info.name not in {"base", "registry"} and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["STRATEGIES", "Strategy", "get"]
