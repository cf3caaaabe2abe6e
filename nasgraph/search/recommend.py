"""Evidence -> the recommendation a user reads: the pick, the runner-up, and how sure the search is.

The confidence rule (strong / moderate / weak / none) is documented in docs/recommendation.md; each
warning names what to change. A pick with no real evidence is "no confident pick", never a share.

Measured.detail keys read here: "source" (or "scored"; a value or one per seed): "shared-weights" or
"one-shot" mark scores read off the supernet, anything else (or none) an architecture trained on its
own; "eval_n": examples behind each score (binomial noise of accuracy-like metrics).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nasgraph.search.evidence import Choice, Evidence
from nasgraph.search.objective import CostTable
from nasgraph.search.verdicts import Warn, cheaper_or_equal, choice_point_verdicts, cost_axis, pooled_sd, warnings_for

LEVELS = ("none", "weak", "moderate", "strong")
SHARED = {"shared-weights", "one-shot"}   # Measured.detail["source"] of scores read off the supernet


def key(choice: Choice) -> str:
    return json.dumps(choice, sort_keys=True)


def _one(v):
    """A detail value, or the first of its per-seed list."""
    return v[0] if isinstance(v, list) and v else v


def score_source(detail: dict) -> str:
    """"shared-weights" (a supernet estimate) or "standalone"."""
    return "shared-weights" if _one(detail.get("source", detail.get("scored"))) in SHARED else "standalone"


@dataclass
class Architecture:
    """One architecture the recommendation shows."""

    name: str
    choice: Choice
    roles: list[str]                       # "pick", "runner-up", "homogeneous", "seed N pick", "measured"
    scores: list[float] = field(default_factory=list)
    source: str = ""                       # "standalone" | "shared-weights" | "" (not scored)
    eval_n: int | None = None              # examples behind each score (binomial noise), when known
    cost: float | None = None              # the evidence's cost unit
    flops: float | None = None
    latency_ms: float | None = None
    pareto: bool = False

    @property
    def mean(self) -> float | None:
        return sum(self.scores) / len(self.scores) if self.scores else None

    @property
    def sd(self) -> float | None:
        if len(self.scores) < 2:
            return None
        m = self.mean
        return math.sqrt(sum((s - m) ** 2 for s in self.scores) / (len(self.scores) - 1))

    def to_json(self) -> dict:
        return {**asdict(self), "mean": self.mean, "sd": self.sd}


@dataclass
class Recommendation:
    strategy: str
    metric: str
    cost_kind: str
    confidence: str                        # one of LEVELS
    headline: str
    pick: Architecture
    runner_up: Architecture | None
    seeds: list[int]
    seeds_agreeing: int                    # seeds whose whole pick is the voted pick
    margin: float | None                   # pick mean - runner-up mean (metric units)
    margin_se: float | None                # standard error of that difference
    choice_points: list[dict]
    architectures: list[Architecture]
    warnings: list[Warn]
    steps: int | None = None
    wall_seconds: float | None = None
    reference_seconds: float | None = None

    @property
    def confident(self) -> bool:
        return self.confidence != "none"

    def to_json(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k not in ("pick", "runner_up", "architectures", "warnings")}
        return {**out, "confident": self.confident, "pick": self.pick.to_json(),
                "runner_up": self.runner_up.to_json() if self.runner_up else None,
                "architectures": [a.to_json() for a in self.architectures],
                "warnings": [asdict(w) for w in self.warnings]}


def arch_name(choice: Choice, candidates: dict[str, list[str]]) -> str:
    """"softmax" when every group of every point took it; else "L0 softmax; L1 linear/local" (per head)."""
    labels = {n: [candidates[n][i] for i in idx] for n, idx in choice.items()}
    flat = {l for ls in labels.values() for l in ls}
    if len(flat) == 1:
        return next(iter(flat))
    short = lambda n: n.removesuffix(".attention")  # noqa: E731
    return "; ".join(f"{short(n)} {'/'.join(ls) if len(set(ls)) > 1 else ls[0]}" for n, ls in labels.items())


def vote(picks: list[Choice]) -> Choice:
    """Majority per group over seeds; ties go to the earliest seed."""
    return {n: [Counter(p[n][g] for p in picks).most_common(1)[0][0] for g in range(len(picks[0][n]))]
            for n in picks[0]}


def homogeneous(candidates: dict[str, list[str]], groups: dict[str, int]) -> list[Choice]:
    """One architecture per type every choice point offers, each group taking it."""
    shared = [l for l in next(iter(candidates.values())) if all(l in c for c in candidates.values())]
    return [{n: [candidates[n].index(l)] * groups[n] for n in candidates} for l in shared]


def gather(ev: Evidence, pick: Choice, flops: CostTable | None, latency: CostTable | None) -> list[Architecture]:
    """The architectures considered: measured ones, the homogeneous ones, the pick, each seed's pick."""
    archs: dict[str, Architecture] = {}

    def get(choice: Choice, role: str | None) -> Architecture:
        a = archs.setdefault(key(choice), Architecture(arch_name(choice, ev.candidates), choice, []))
        if role and role not in a.roles:
            a.roles.append(role)
        return a

    for m in ev.measured:   # a strategy's "pick" is per seed; the pick shown is the vote over seeds
        a = get(m.choice, {"homogeneous": "homogeneous", "pick": None}.get(m.kind, "measured"))
        a.scores += list(m.scores)
        a.source = score_source(m.detail)
        a.eval_n = _one(m.detail.get("eval_n")) or a.eval_n
        a.cost = m.cost
    get(pick, "pick")
    for choice in homogeneous(ev.candidates, {n: len(c) for n, c in ev.picks[0].items()}):
        get(choice, "homogeneous")
    for seed, choice in zip(ev.seeds, ev.picks):
        get(choice, f"seed {seed} pick")
    for a in archs.values():
        a.flops = flops.of_choice(a.choice) if flops else None
        a.latency_ms = latency.of_choice(a.choice) / 1000 if latency else None
        if a.cost is None:   # in the evidence's unit: FLOPs, latency_ms, or the latency table's microseconds
            a.cost = {"flops": a.flops, "latency_ms": a.latency_ms}.get(
                ev.cost_kind, latency.of_choice(a.choice) if latency else None)
    mark_pareto(list(archs.values()))
    return list(archs.values())


def mark_pareto(archs: list[Architecture]) -> None:
    """Scored architectures no other beats on both cost (lower) and metric (higher)."""
    best = -math.inf
    for a in sorted((a for a in archs if a.scores and cost_axis(a) is not None), key=lambda a: (cost_axis(a), -a.mean)):
        if a.mean > best:
            a.pareto, best = True, a.mean


def difference_se(a: Architecture, b: Architecture, noise: float | None) -> float | None:
    """Standard error of mean(a) - mean(b): seed spread (pooled) and evaluation noise, the larger."""
    parts = []
    if noise is not None:
        parts.append(noise * math.sqrt(1 / len(a.scores) + 1 / len(b.scores)))
    if a.eval_n and b.eval_n:   # binomial noise of an accuracy on eval_n examples
        binom = lambda x: x.mean * (1 - x.mean) / (x.eval_n * len(x.scores))  # noqa: E731
        if all(0 <= x.mean <= 1 for x in (a, b)):
            parts.append(math.sqrt(binom(a) + binom(b)))
    return max(parts) if parts else None


def recommend(evidence: Evidence, latency_table: CostTable | None = None,
              flops_table: CostTable | None = None) -> Recommendation:
    """The pick (vote over seeds), its runner-up, the confidence and the warnings (docs/recommendation.md)."""
    ev = evidence
    pick_choice = getattr(ev, "chosen", None) or vote(ev.picks)   # a strategy's own decision, else the vote
    archs = gather(ev, pick_choice, flops_table, latency_table)
    pick = next(a for a in archs if a.choice == pick_choice)
    scored = [a for a in archs if a.scores and a is not pick]
    runner = max(scored, key=lambda a: a.mean, default=None)
    if runner is not None:
        runner.roles.append("runner-up")
    agreeing = sum(p == pick_choice for p in ev.picks)
    noise = pooled_sd([a.scores for a in archs])
    margin = pick.mean - runner.mean if pick.scores and runner else None
    se = difference_se(pick, runner, noise) if margin is not None else None
    points = choice_point_verdicts(ev, pick_choice)
    level, why = confidence(ev, pick, runner, margin, se, agreeing, points, archs)
    warns = warnings_for(ev, pick, runner, margin, se, agreeing, points, archs, level)
    headline = (f"no confident pick: the search leaned to {pick.name} ({why})" if level == "none"
                else f"pick {pick.name}, confidence {level} ({why})")
    steps = max((m.steps for m in ev.measured), default=None)
    return Recommendation(ev.strategy, ev.metric, ev.cost_kind, level, headline, pick, runner, list(ev.seeds),
                          agreeing, margin, se, points, archs, warns, steps, ev.wall_seconds, ev.reference_seconds)


def confidence(ev: Evidence, pick: Architecture, runner: Architecture | None, margin: float | None,
               se: float | None, agreeing: int, points: list[dict], archs: list[Architecture]) -> tuple[str, str]:
    """(level, a short reason); the rule is docs/recommendation.md."""
    n = len(ev.picks)
    if n > 1 and agreeing * 2 <= n:
        return "none", f"only {agreeing}/{n} seeds picked it"
    z = margin / se if margin is not None and se else None
    if z is not None and z <= -1 and cheaper_or_equal(runner, pick):
        return "none", f"{runner.name} scores higher at no more cost"
    standalone = pick.source == "standalone" and runner is not None and runner.source == "standalone"
    if standalone and z is not None:
        if z >= 2 and n > 1 and agreeing == n and len(pick.scores) > 1:
            return "strong", f"{agreeing}/{n} seeds, margin {z:.1f} standard errors"
        if z >= 1:
            return "moderate", f"margin {z:.1f} standard errors" + ("" if n > 1 else ", one seed")
        if z <= -1:
            return "weak", f"{runner.name} scores higher at a higher cost: the pick trades metric for cost"
        tied = [a for a in archs if a.scores and a is not pick and abs(pick.mean - a.mean) < se]
        if all(cheaper_or_equal(pick, a) and cost_axis(pick) < cost_axis(a) for a in tied):
            return "moderate", "tied within noise with the best, and the cheapest of the tie"
        return "weak", f"margin {z:.1f} standard errors: within noise"
    if standalone and margin is not None and margin > 0:
        return "weak", "ahead on standalone scores, but the noise is unknown (one seed, evaluation size not given)"
    if z is not None and z >= 1:
        return "weak", f"supernet estimate {z:.1f} standard errors ahead; no standalone score"
    decided = [p for p in points if p["decided"]]
    if decided and len(decided) == len(points):
        return "weak", "decisive supernet weights; no standalone score"
    if margin is not None and margin > 0:
        return "weak", "ahead within noise on supernet estimates"
    return "none", "the evidence does not separate the candidates"


def write_recommendation(run_dir: str | Path, evidence: Evidence, *, flops: CostTable | None = None,
                         latency: CostTable | None = None) -> Recommendation:
    """recommendation.json (and evidence.json) in the run folder; report.md is nasgraph.report's."""
    from nasgraph.training.rundir import RunDir

    rec = recommend(evidence, latency_table=latency, flops_table=flops)
    run = RunDir(run_dir, resume=True)
    run.write_json("evidence.json", evidence.to_json())
    run.write_json("recommendation.json", rec.to_json())
    return rec
