"""Search strategies: darts, gdas, fixed (DARTFormer). One file each; `get(name)` returns the class."""
from nasgraph.search.strategies import darts, fixed, gdas  # noqa: F401  (registration)
from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import STRATEGIES, get

__all__ = ["STRATEGIES", "Strategy", "get"]
