"""Search strategies by name."""
from __future__ import annotations

from nasgraph.plugins import GROUPS
from nasgraph.registry import Registry
from nasgraph.search.strategies.base import Strategy

STRATEGIES = Registry("search strategy", Strategy, key="strategy", group=GROUPS["search strategy"])
register, get = STRATEGIES.register, STRATEGIES.get
