"""teacher_race's cost ledger: what the search has spent, in units of one standalone training, and
the race that still fits under `max_cost`.

Measured, not assumed: every trial records its CPU seconds (nasgraph.search.trials: the training
steps alone and the whole trial, scoring included). One standalone training is `total_steps` steps at
the mean CPU seconds per training step of the homogeneous candidates (the teacher and the homogeneous
students of each type; a real training also evaluates, so this unit is a lower bound and the ledger
errs high). Spent is this process's CPU time since the search began (data, cost table, trials,
scoring), plus the CPU time of trials that ran in other processes (a remote backend). A race costs,
per contender, its steps at its type's measured steady rate (per step once started: a short student's
first steps carry start-up costs that a longer race spreads thin) plus its trial's start-up and its
scoring (the held-out slice, which the race reuses, and its examples after the slice, at its measured
CPU seconds per scored example), and the pick's scoring of those examples (its slice's scores are in
its record). The race is sized to what is left under max_cost minus a reserve for the search's last
writes: the configured steps and examples; else fewer examples after the slice (a less precise race,
not a shorter one); else fewer steps; below `race_min_fraction` of the budget the least promising
contenders are dropped; none left: no race. Every cut is a warning
in the recommendation, with the max_cost that would run the whole race.
"""
from __future__ import annotations

import functools
import json
import math
import statistics
import time

from nasgraph import distributed
from nasgraph.search.strategies._race import share, untested
from nasgraph.search.trials import TrialRequest, finished, trial_name

# standalone trainings kept for what the search does after the race (judging is predicted with it;
# writing the evidence, recommendation and plots is not)
RESERVE = 0.02
UNCAPPED = 1e18   # CPU seconds: "allowed" of a race sized without a cap


def rate(rec: dict) -> float | None:
    """CPU seconds per training step of a trial record (None where it did not record them)."""
    steps, cpu = rec.get("train_steps"), rec.get("train_cpu_seconds")
    return cpu / steps if steps and cpu is not None else None


def steady_rate(rec: dict) -> float | None:
    """CPU seconds per training step once started (after fit's first log interval), else the whole
    training's rate: what a race's steps cost (a 15-step student's first steps carry start-up costs:
    gated_deltanet 0.10 CPU s per step over all 15, 0.08 once started and in its 90-step race)."""
    return rec.get("train_cpu_per_step") or rate(rec)


def start_up(rec: dict) -> float:
    """CPU seconds of a training beyond its steps at the steady rate (model to device, optimizer, first
    steps, the last checkpoint): paid once per trial."""
    steps, whole, steady = rec.get("train_steps"), rate(rec), steady_rate(rec)
    return max(0.0, (whole - steady) * steps) if steps and whole is not None and steady is not None else 0.0


def per_example(rec: dict, examples: int) -> float | None:
    """CPU seconds per scored example of a trial: its scoring's CPU time over the examples it scored (else
    its CPU time outside training, which also holds the model's build and a student's reference outputs)."""
    if rec.get("score_cpu_seconds") is not None and examples:
        return rec["score_cpu_seconds"] / examples
    if rec.get("cpu_seconds") is None or rec.get("train_cpu_seconds") is None or not examples:
        return None
    return max(0.0, rec["cpu_seconds"] - rec["train_cpu_seconds"]) / examples


class Ledger:
    """CPU seconds spent since `started` (process time) and the unit: one standalone training."""

    def __init__(self, ctx, total_steps: int):
        self.started = time.process_time() if ctx.started is None else ctx.started
        self.remote = bool(ctx.backend is not None and ctx.backend.remote)
        self.trials, self.total_steps = ctx.out / "trials", total_steps
        self.rates: dict[str, list[float]] = {}      # whole trainings' rates: the unit
        self.steady: dict[str, list[float]] = {}     # once started, and each trial's start-up: a race's price
        self.starts: dict[str, list[float]] = {}
        self.scoring: dict[str, list[float]] = {}

    def add(self, label: str, rec: dict | None, scored: int) -> None:
        """A trial record of the homogeneous type `label` that scored `scored` examples besides training."""
        if rec is not None and (r := rate(rec)) is not None:
            self.rates.setdefault(label, []).append(r)
            self.steady.setdefault(label, []).append(steady_rate(rec))
            self.starts.setdefault(label, []).append(start_up(rec))
            if (e := per_example(rec, scored)) is not None:
                self.scoring.setdefault(label, []).append(e)

    def add_seed(self, ctx, seed: int, label: str, teacher: dict, adapt_steps: int) -> None:
        """A seed's teacher (type `label`) and its homogeneous students of every other type, where finished."""
        scored = len(ctx.score_split(ctx.splits(seed)))
        self.add(label, teacher, scored)
        for other in (o for o in ctx.homogeneous_labels() if o != label):
            choice = ctx.homogeneous(other)
            self.add(other, finished(ctx, TrialRequest(choice, seed, adapt_steps,
                                                       trial_name(ctx, choice, seed, "student-"))), scored)

    def spent(self) -> float:
        """CPU seconds of this search so far (a remote backend's trials: their recorded CPU time)."""
        remote = sum(json.loads(p.read_text()).get("cpu_seconds") or 0.0
                     for p in self.trials.glob("*/budget*.json")) if self.remote else 0.0
        return time.process_time() - self.started + remote

    def rate_of(self, label: str) -> float:
        """CPU seconds per race step of a type: its measured steady rate (else the mean over types)."""
        return statistics.mean(self.steady.get(label) or [r for rs in self.steady.values() for r in rs])

    def start_of(self, label: str) -> float:
        """CPU seconds a trial of the type costs beyond its steps (measured; else the mean over types)."""
        return statistics.mean(self.starts.get(label) or [r for rs in self.starts.values() for r in rs] or [0.0])

    def scoring_of(self, label: str) -> float:
        return statistics.mean(self.scoring.get(label) or [e for es in self.scoring.values() for e in es] or [0.0])

    @property
    def unit(self) -> float | None:
        """CPU seconds of one standalone training: total_steps at the mean rate over the types measured."""
        if not self.rates:
            return None
        return self.total_steps * statistics.mean(statistics.mean(rs) for rs in self.rates.values())


def fit_race(per_seed: list[list[str]], configured, ledger: Ledger, allowed: float, min_steps: int,
             scored: int, race_scored: int, defender: str, batch: int = 1) -> tuple[int, int | None, int, float]:
    """(contenders kept per seed k, steps cap, examples scored beyond the slice, predicted CPU seconds) of
    the largest race that fits in `allowed` CPU seconds: the first k contenders of each seed (best first)
    at min(configured(their labels), cap) steps, the cap at least `min_steps`; (0, None, 0, 0.0) when no race fits.
    Steps come before precision: a race keeps its configured steps and scores fewer of its `race_scored`
    examples beyond the slice (whole batches of `batch`) before it trains fewer steps. `scored`: the
    held-out slice a contender's trial scores (the race reuses it; the pick's is in its record);
    `defender`: the pick's type, scored on the examples beyond the slice once per seed."""
    for k in range(max(map(len, per_seed), default=0), 0, -1):
        kept = [cs[:k] for cs in per_seed if cs]
        fixed = sum(ledger.start_of(c) + ledger.scoring_of(c) * scored for cs in kept for c in cs)
        per_example = sum(ledger.scoring_of(c) for cs in kept for c in cs) + len(kept) * ledger.scoring_of(defender)
        per_step = sum(ledger.rate_of(c) for cs in kept for c in cs)
        want = max(configured(cs) for cs in kept)
        whole = sum(configured(cs) * ledger.rate_of(c) for cs in kept for c in cs)
        if fixed + whole <= allowed:          # every step: as many examples as are left for
            extra = race_scored if per_example <= 0 else \
                min(race_scored, batch * int((allowed - fixed - whole) / per_example / batch))
            return k, want, extra, fixed + whole + extra * per_example
        cap = min(want, int((allowed - fixed) / per_step)) if per_step > 0 else want
        if cap >= min_steps:
            steps = [min(configured(cs), cap) for cs in kept]
            return k, cap, 0, fixed + sum(s * ledger.rate_of(c) for cs, s in zip(kept, steps) for c in cs)
    return 0, None, 0, 0.0


class RaceBudget:
    """teacher_race's sizing of the race under max_cost and its accounting (a mixin of the strategy:
    config, adapt_steps, race_steps, budget)."""

    def fit_budget(self, ctx, ledger: Ledger, seeds, label: str, teachers, stages: list[dict]) -> None:
        """Size the race to what is left under max_cost: fewer examples beyond the slice, then fewer steps,
        then fewer contenders (the last first), else none; a cut is a `race_cut` warning that names the
        untested types left unraced."""
        cfg, budget = self.config, self.budget
        for seed, rec in zip(seeds, teachers):
            ledger.add_seed(ctx, seed, label, rec, self.adapt_steps)
        unit, spent, racing = ledger.unit, ledger.spent(), [st for st in stages if st["contenders"]]
        budget.update(unit_cpu_seconds=unit and round(unit, 2),
                      spent_before_race=unit and round(spent / unit / len(seeds), 3))
        splits, bs = ctx.splits(seeds[0]), ctx.train.batch_size
        scored = len(ctx.score_split(splits))      # the slice every trial scored: the race's first examples
        extra = max(0, min(len(splits["arch"]), cfg.race_batches * bs) - scored)
        for st in stages:
            st["extra"] = extra                     # examples the race scores beyond the slice
        if cfg.max_cost is None or unit is None or not racing:
            return
        allowed = cfg.max_cost * unit * len(seeds) - spent - RESERVE * unit * len(seeds)
        wanted = {st["seed"]: list(st["contenders"]) for st in racing}
        size = functools.partial(fit_race, [[c["label"] for c in st["contenders"]] for st in racing], self.race_steps,
                                 ledger, min_steps=max(1, round(cfg.race_min_fraction * self.total_steps)),
                                 scored=scored, race_scored=extra, defender=label, batch=bs)
        # measured on rank 0 and sent to every rank (torchrun: the ranks train the race's trials together);
        # the whole race's prediction, uncapped, says which max_cost would run it
        (k, cap, kept_extra, predicted), full = distributed.from_rank0(
            lambda: (size(allowed=allowed), size(allowed=UNCAPPED)[3]))
        cuts, short, shorter = [], {}, False     # short: untested type -> (its share, steps raced, steps of the whole race)
        for st in racing:
            found = wanted[st["seed"]]
            st["contenders"], st["dropped"] = found[:k], [c["label"] for c in found[k:]]
            st["no_evidence"] = [c["label"] for c in found[k:] if untested(c, cfg.inherit_min)]   # caps confidence
            configured = self.race_steps([c["label"] for c in st["contenders"]])
            st["steps"] = min(configured, cap) if k else None
            st["extra"], st["configured_steps"] = (kept_extra if k else 0), configured
            for i, c in enumerate(found):
                ran, whole = st["steps"] if i < k else 0, self.race_steps([c["label"] for c in found])
                if untested(c, cfg.inherit_min) and ran < whole:
                    short[c["label"]] = (c["inherits"], ran, whole)
            if not k:
                st["verdict"] = "no race: max_cost reached"
            fewer = k and st["extra"] < extra     # scored on fewer examples: less precise, not shorter
            if st["dropped"] or (k and st["steps"] < configured) or fewer:
                shorter = shorter or bool(st["dropped"]) or not k or st["steps"] < configured
                names = ", ".join(c["label"] for c in st["contenders"])
                cuts.append(f"seed {st['seed']}: " + (f"{names} at {st['steps']} steps (configured {configured})"
                                                      if k and st["steps"] < configured else names if k else
                                                      "no race") +
                            (f", scored on {-(-(scored + st['extra']) // bs)} of {-(-(scored + extra) // bs)} "
                             f"held-out batches" if fewer else "") +
                            (f", {', '.join(st['dropped'])} not raced" if st["dropped"] and k else ""))
        budget.update(allowed_for_race=round(allowed / unit / len(seeds), 3), race_steps=cap,
                      race_batches=k and -(-(scored + kept_extra) // bs),
                      race_predicted=round(predicted / unit / len(seeds), 3))
        if cuts:
            # the max_cost that runs the whole race (every contender, its configured steps), from the same ledger
            needed = math.ceil(10 * (spent + full + RESERVE * unit * len(seeds)) / unit / len(seeds)) / 10
            budget["max_cost_full_race"] = needed
            unraced = "".join(
                f"{t} untested (its student inherits {share(f)} of its weights: not evidence), " +
                (f"raced {n} of {want} steps" if n else "not raced, so the search has no evidence on it") +
                f": max_cost {needed:g} would race it {want} steps; " for t, (f, n, want) in short.items())
            budget["warning"] = {
                "code": "race_cut",
                "message": f"{unraced}the race was cut to keep the search under max_cost {cfg.max_cost} standalone "
                           f"trainings per seed ({spent / unit / len(seeds):.2f} spent before it; one training ~"
                           f"{unit:.3g} CPU s, measured): {'; '.join(cuts)}; " +
                           ("a shorter race rules fewer types in" if shorter else "fewer examples separate less"),
                "fix": f"raise max_cost to {needed:g} (the whole race, predicted from the measured CPU rates), or "
                       f"lower teacher_fraction / adapt_fraction to leave the race more"}

    def account(self, ledger: Ledger, n_seeds: int) -> dict:
        """The budget stage: the cap, the unit, and what the search spent up to its pick (measured)."""
        unit, cap = ledger.unit, self.config.max_cost
        out = {**self.budget, "spent_cpu_seconds": round(ledger.spent(), 2),
               "spent": unit and round(ledger.spent() / unit / n_seeds, 3)}
        over = cap is not None and out["spent"] and out["spent"] > cap
        if over and out.get("race_predicted"):
            # a race sized to fill the cap, priced at rates that moved with the machine's load (beside a cut's warning)
            out["warnings" if "warning" in out else "warning"] = {
                "code": "over_max_cost",
                "message": f"the search cost {out['spent']:.2f} standalone trainings per seed, over max_cost {cap}: "
                           f"its race cost {out['spent'] - out['spent_before_race']:.2f}, predicted "
                           f"{out['race_predicted']:.2f} from the CPU rates measured before it (they move with the "
                           f"machine's load)",
                "fix": "raise max_cost by a tenth, or lower race_fraction"}
            if "warnings" in out:
                out["warnings"] = [out["warnings"]]
        elif over and "warning" not in out:
            out["warning"] = {   # the race is the only part the cap resizes; the teacher phase is fixed
                "code": "over_max_cost",
                "message": f"the search cost {out['spent']:.2f} standalone trainings per seed, over max_cost {cap}, "
                           f"before any race: the cap resizes only the race, not the teacher phase (the teacher at "
                           f"teacher_fraction {self.config.teacher_fraction}, each student at adapt_fraction "
                           f"{self.config.adapt_fraction} plus its scoring; a costly teacher or many students)",
                "fix": "lower teacher_fraction / adapt_fraction, fewer candidates, or a cheaper teacher"}
        return out
