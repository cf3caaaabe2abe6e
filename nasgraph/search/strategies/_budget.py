"""teacher_race's cost ledger: what the search has spent, in units of one standalone training, and
the race that still fits under `max_cost`.

Measured, not assumed: every trial records its CPU seconds (nasgraph.search.trials: the training
steps alone and the whole trial, scoring included). One standalone training is `total_steps` steps at
the mean CPU seconds per training step of the homogeneous candidates (the teacher and the homogeneous
students of each type; a real training also evaluates, so this unit is a lower bound and the ledger
errs high). Spent is this process's CPU time since the search began (data, cost table, trials,
scoring), plus the CPU time of trials that ran in other processes (a remote backend). A race costs,
per contender, its steps at its type's measured rate plus its scoring (the held-out slice and the
race's batches, at its measured CPU seconds per scored example), and the pick's scoring on the race's
batches. The race is sized to what is left under max_cost minus a reserve for the search's last
writes: the configured steps, else fewer; below `race_min_fraction` of the budget the least promising
contenders are dropped; none left: no race. Every cut is a warning in the recommendation.
"""
from __future__ import annotations

import json
import statistics
import time


def rate(rec: dict) -> float | None:
    """CPU seconds per training step of a trial record (None where it did not record them)."""
    steps, cpu = rec.get("train_steps"), rec.get("train_cpu_seconds")
    return cpu / steps if steps and cpu is not None else None


def per_example(rec: dict, examples: int) -> float | None:
    """CPU seconds per scored example of a trial (its CPU time outside training, over what it scored)."""
    if rec.get("cpu_seconds") is None or rec.get("train_cpu_seconds") is None or not examples:
        return None
    return max(0.0, rec["cpu_seconds"] - rec["train_cpu_seconds"]) / examples


class Ledger:
    """CPU seconds spent since `started` (process time) and the unit: one standalone training."""

    def __init__(self, ctx, total_steps: int):
        self.started = time.process_time() if ctx.started is None else ctx.started
        self.remote = bool(ctx.backend is not None and ctx.backend.remote)
        self.trials, self.total_steps = ctx.out / "trials", total_steps
        self.rates: dict[str, list[float]] = {}
        self.scoring: dict[str, list[float]] = {}

    def add(self, label: str, rec: dict | None, scored: int) -> None:
        """A trial record of the homogeneous type `label` that scored `scored` examples besides training."""
        if rec is not None and (r := rate(rec)) is not None:
            self.rates.setdefault(label, []).append(r)
            if (e := per_example(rec, scored)) is not None:
                self.scoring.setdefault(label, []).append(e)

    def spent(self) -> float:
        """CPU seconds of this search so far (a remote backend's trials: their recorded CPU time)."""
        remote = sum(json.loads(p.read_text()).get("cpu_seconds") or 0.0
                     for p in self.trials.glob("*/budget*.json")) if self.remote else 0.0
        return time.process_time() - self.started + remote

    def rate_of(self, label: str) -> float:
        return statistics.mean(self.rates.get(label) or [r for rs in self.rates.values() for r in rs])

    def scoring_of(self, label: str) -> float:
        return statistics.mean(self.scoring.get(label) or [e for es in self.scoring.values() for e in es] or [0.0])

    @property
    def unit(self) -> float | None:
        """CPU seconds of one standalone training: total_steps at the mean rate over the types measured."""
        if not self.rates:
            return None
        return self.total_steps * statistics.mean(statistics.mean(rs) for rs in self.rates.values())


def fit_race(per_seed: list[list[str]], configured, ledger: Ledger, allowed: float, min_steps: int,
             scored: int, race_scored: int, defender: str) -> tuple[int, int | None, float]:
    """(contenders kept per seed k, steps cap, predicted CPU seconds) of the largest race that fits in
    `allowed` CPU seconds: the first k contenders of each seed (best first) at min(configured(n), cap)
    steps, the cap at least `min_steps`; (0, None, 0.0) when no race fits. `scored`: examples a
    contender's trial scores besides the race's `race_scored`; `defender`: the pick's type, scored on
    the race's examples once per seed."""
    for k in range(max(map(len, per_seed), default=0), 0, -1):
        kept = [cs[:k] for cs in per_seed if cs]
        fixed = sum(ledger.scoring_of(c) * (scored + race_scored) for cs in kept for c in cs) + \
            len(kept) * ledger.scoring_of(defender) * race_scored
        per_step = sum(ledger.rate_of(c) for cs in kept for c in cs)
        want = max(configured(len(cs)) for cs in kept)
        cap = min(want, int((allowed - fixed) / per_step)) if per_step > 0 else want
        if cap >= min_steps:
            steps = [min(configured(len(cs)), cap) for cs in kept]
            return k, cap, fixed + sum(s * ledger.rate_of(c) for cs, s in zip(kept, steps) for c in cs)
    return 0, None, 0.0
