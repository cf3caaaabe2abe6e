"""Successive halving (ASHA-style) over the homogeneous candidates, at >= 2 seeds each.

Rung 0 trains every homogeneous candidate (all layers one type) for `min_fraction` of the budget at
each seed; each rung keeps the better 1/eta by mean score over seeds (minus the cost term) and
continues the survivors (from their checkpoints) to eta times the budget, up to `max_fraction`.
With `refine`, the per-layer mixes of the two best types are trained at the last rung's budget and
compete with them. Cost with 3 candidates and the defaults: 3 x 2 x 1/8 + 2 x 2 x 1/8 = 1.25 trainings.
Each rung is one batch of independent trials (`ctx.run_trials`: in-process, or Ray Tune trials) and
the cut between rungs waits for the whole rung (synchronous halving): asynchronous ASHA promotions
would make the pick depend on which trial finished first.
"""
from __future__ import annotations

import itertools
import math
import statistics
import time

from pydantic import Field

from nasgraph.config import StrictConfig
from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence
from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import register
from nasgraph.search.trials import TrialRequest, trial_name
from nasgraph.training.rundir import RunDir


class HalvingConfig(StrictConfig):
    min_fraction: float = Field(0.125, gt=0, le=1)  # rung 0 budget, a share of search.steps
    max_fraction: float = Field(0.5, gt=0, le=1)    # no rung trains longer than this share
    eta: int = Field(2, ge=2)                       # keep the better 1/eta, multiply the budget by eta
    replicas: int = Field(2, ge=1)                  # seeds per candidate (search.seeds, extended)
    refine: bool = False                            # then try per-layer mixes of the two best types


def rung_budgets(n: int, steps: int, config: HalvingConfig) -> list[tuple[int, int]]:
    """[(training steps, candidates trained)] per rung; stops when one candidate is left."""
    budget, rungs = config.min_fraction * steps, []
    while True:
        rungs.append((max(1, round(budget)), n))
        n, budget = math.ceil(n / config.eta), budget * config.eta
        if n <= 1 or budget > config.max_fraction * steps + 1e-9:
            return rungs


def seeds_of(search, replicas: int) -> list[int]:
    seeds = list(search.seeds)
    while len(seeds) < replicas:
        seeds.append(max(seeds) + 1)
    return seeds


@register("halving")
class Halving(Strategy):
    Config = HalvingConfig

    @classmethod
    def check(cls, config, search, choice_sizes: list[int]) -> None:
        if config.min_fraction > config.max_fraction:
            raise ConfigError(f"min_fraction {config.min_fraction} exceeds max_fraction {config.max_fraction}",
                              key="min_fraction")

    def run(self, ctx) -> Evidence:
        t0, seeds = time.perf_counter(), seeds_of(self.search, self.config.replicas)
        arms = {l: {"choice": c, "kind": "homogeneous", "rung": -1, "records": []}
                for l in ctx.homogeneous_labels() if (c := ctx.homogeneous(l)) is not None}
        if len(arms) < 2:
            raise ConfigError("halving needs at least two candidates offered at every choice point; "
                              "use darts, gdas or fixed for this space", key="strategy")
        rungs, alive, history = rung_budgets(len(arms), self.total_steps, self.config), list(arms), []
        for r, (budget, _) in enumerate(rungs):
            self.train(ctx, [arms[label] for label in alive], seeds, budget, r, f"halving rung {r} ({budget} steps)")
            for label in alive:
                history.append({"rung": r, "steps": budget, "candidate": label,
                                "scores": [x["score"] for x in arms[label]["records"]],
                                "value": self.value(ctx, arms[label])})
            keep = rungs[r + 1][1] if r + 1 < len(rungs) else 1
            alive = sorted(alive, key=lambda l: -self.value(ctx, arms[l]))[:keep]
        last = len(rungs) - 1
        if self.config.refine:
            top = sorted((l for l in arms if arms[l]["rung"] == last), key=lambda l: -self.value(ctx, arms[l]))
            mixes = self.mixes(ctx, [arms[l]["choice"] for l in top[:2]])
            mixed = [arms.setdefault(trial_name(ctx, c, 0)[:-3], {"choice": c, "kind": "mixed", "records": []})
                     for c in mixes]
            self.train(ctx, mixed, seeds, rungs[-1][0], last, "halving refine")
        contenders = [a for a in arms.values() if a["rung"] == last]
        best = max(contenders, key=lambda a: self.value(ctx, a))
        picks = [max(contenders, key=lambda a: self.value(ctx, a, [a["records"][i]]))["choice"]
                 for i in range(len(seeds))]
        RunDir(ctx.out, resume=True).write_json("rungs.json", {"rungs": rungs, "seeds": seeds, "history": history})
        measured = [ctx.measured(a["choice"], [x["score"] for x in a["records"]], a["records"][0]["steps"], a["kind"],
                                 {"source": "trial", "eval_n": a["records"][0]["eval_n"], "rung": a["rung"],
                                  "seconds": sum(x["seconds"] for x in a["records"]),
                                  "examples": [x.get("examples") for x in a["records"]]})
                    for a in arms.values()]
        return ctx.evidence(self.name, seeds=seeds, picks=picks, measured=measured,
                            wall_seconds=time.perf_counter() - t0, chosen=best["choice"],
                            notes=[f"successive halving, rungs (steps, candidates) {rungs}: each score is the "
                                   f"held-out metric after the candidate's last rung, not a full training"])

    @staticmethod
    def train(ctx, arms: list[dict], seeds: list[int], budget: int, rung: int, desc: str) -> None:
        """Train every arm at every seed to `budget`: one batch of independent trials."""
        requests = [TrialRequest(a["choice"], s, budget, trial_name(ctx, a["choice"], s)) for a in arms for s in seeds]
        records = ctx.run_trials(requests, desc)
        for i, arm in enumerate(arms):
            arm["records"], arm["rung"] = records[i * len(seeds):(i + 1) * len(seeds)], rung

    def value(self, ctx, arm: dict, records: list[dict] | None = None) -> float:
        """Mean score over seeds (or over `records`) minus the cost term."""
        records = records or arm["records"]
        return self.utility(statistics.mean(x["score"] for x in records), ctx.cost.of_choice(arm["choice"]))

    @staticmethod
    def mixes(ctx, finalists: list[dict]) -> list[dict]:
        """Every per-layer combination of the finalists' types that is not one of them."""
        nodes = list(ctx.labels)
        combos = itertools.product(*[[f[n] for f in finalists] for n in nodes])
        out = [dict(zip(nodes, c)) for c in combos]
        return [c for c in out if c not in finalists and c not in out[:out.index(c)]]
