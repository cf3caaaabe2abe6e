"""The strategy contract: a typed Config, load-time checks, and `run(ctx) -> Evidence`.

Two families share it: supernet strategies (darts, gdas, fixed; `_supernet.SupernetStrategy`) attach
a mixer to the mixed layers of one supernet per seed; trial strategies (halving, teacher) train small
discrete models derived from the spec (`nasgraph.search.trials`). The runner only calls `run`.
"""
from __future__ import annotations

from typing import ClassVar

from nasgraph.config import StrictConfig, parse_config
from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence


class NoOptions(StrictConfig):
    """A strategy without options of its own."""


class Strategy:
    name: ClassVar[str] = ""
    Config: ClassVar[type[StrictConfig]] = NoOptions

    def __init__(self, search, total_steps: int, cost=None):
        """`search` is the spec's SearchSpec; `total_steps` the search budget unit (search.steps or
        train.steps); `cost` the CostTable of the search space."""
        self.search, self.total_steps, self.cost = search, total_steps, cost
        self.config = self.parse(search.options)

    @classmethod
    def parse(cls, options: dict) -> StrictConfig:
        """The strategy's typed Config from the search section's own options (ConfigError, keyed)."""
        from nasgraph.search.strategies.registry import STRATEGIES

        for key in options:
            if key not in cls.Config.model_fields:
                owners = [n for n, c in STRATEGIES.items() if key in c.Config.model_fields]
                if owners:
                    valid = ", ".join(cls.Config.model_fields) or "(none)"
                    raise ConfigError(f"option '{key}' belongs to strategy {' / '.join(owners)}, not "
                                      f"'{cls.name}' (its options: {valid})", key=key)
        return parse_config(cls.Config, options, f"strategy '{cls.name}'")

    @classmethod
    def check(cls, config: StrictConfig, search, choice_sizes: list[int]) -> None:
        """Cross-field checks at spec load time; `choice_sizes` is the candidate count of each choice
        point. Raise ConfigError(key=option) for a bad combination."""

    def run(self, ctx) -> Evidence:
        """Search the space of `ctx` (nasgraph.search.context.SearchContext) and return the evidence."""
        raise NotImplementedError

    # -- helpers every strategy uses ------------------------------------------------------------------
    def cost_term(self) -> tuple[float, float | None]:
        """(weight, target) of the objective's cost term; (0, None) without one."""
        term = self.search.objective.latency or self.search.objective.flops
        if term is None or self.cost is None:
            return 0.0, None
        return term.weight, term.target

    def utility(self, score: float, cost: float) -> float:
        """The task metric minus the cost term (add shape, as the supernet objective)."""
        weight, target = self.cost_term()
        if not weight:
            return score
        ratio = cost / (self.cost.max_total * (target or 1.0))
        return score - weight * (max(0.0, ratio - 1.0) if target else ratio)
