"""Search strategies by name."""
from __future__ import annotations

from nasgraph.registry import Registry
from nasgraph.search.strategies.base import Strategy

STRATEGIES = Registry("search strategy", Strategy)
register, get = STRATEGIES.register, STRATEGIES.get
