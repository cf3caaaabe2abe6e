"""Evidence -> the recommendation a user reads: the pick, the runner-up, and how sure the search is.

The confidence rule (strong / moderate / weak / none) is documented in docs/recommendation.md; each
warning names what to change. A pick with no real evidence is "no confident pick", never a share.

Measured.detail keys read here: "source" (or "scored"; a value or one per seed): "shared-weights" or
"one-shot" mark scores read off the supernet, anything else (or none) an architecture trained on its
own ("adapted ..." one adapted briefly from another's weights, e.g. a teacher's); "eval_n": examples
behind each score (binomial noise of accuracy-like metrics); "examples": per seed, the per-example
scores on the held-out slice (nasgraph.search.paired), which make comparisons paired.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from nasgraph.search.contrasts import Contrast, add_point_contrasts, cheaper, compare, cost_axis
from nasgraph.search.evidence import Choice, Evidence
from nasgraph.search.objective import CostTable
from nasgraph.search.recommend_race import deferred_races, race_contrasts, race_reason, short_races
from nasgraph.search.verdicts import Warn, choice_point_verdicts, pooled_sd, warnings_for
from nasgraph.textfmt import metric_delta

LEVELS = ("none", "weak", "moderate", "strong")
SHARED = {"shared-weights", "one-shot"}   # Measured.detail["source"] of scores read off the supernet
TRIAL = {"standalone", "adapted"}         # scores of a discrete architecture (trained, or adapted from another)
NOT_EVIDENCE = "adapted, not evidence"     # shown, but no contrast counts it for the confidence


def key(choice: Choice) -> str:
    return json.dumps(choice, sort_keys=True)


def _one(v):
    """A detail value, or the first of its per-seed list."""
    return v[0] if isinstance(v, list) and v else v


def score_source(detail: dict) -> str:
    """"shared-weights" (a supernet estimate), "adapted" (briefly adapted from another's weights), "adapted,
    not evidence" (adapted, but with weights the other lacked left untrained: teacher_race) or "standalone"."""
    source = _one(detail.get("source", detail.get("scored")))
    if "not evidence" in str(source):
        return NOT_EVIDENCE
    return "shared-weights" if source in SHARED else "adapted" if "adapted" in str(source) else "standalone"


def _examples(detail: dict) -> list:
    """The per-seed examples records of a detail (one record or a list of them)."""
    ex = detail.get("examples")
    return [ex] if isinstance(ex, dict) else [x for x in (ex or []) if x]


@dataclass
class Architecture:
    """One architecture the recommendation shows."""

    name: str
    choice: Choice
    roles: list[str]                       # "pick", "runner-up", "homogeneous", "seed N pick", "measured"
    scores: list[float] = field(default_factory=list)
    source: str = ""                       # "standalone" | "adapted" | NOT_EVIDENCE | "shared-weights" | ""
    eval_n: int | None = None              # examples behind each score (binomial noise), when known
    cost: float | None = None              # the evidence's cost unit
    flops: float | None = None
    latency_ms: float | None = None
    pareto: bool = False
    examples: list = field(default_factory=list, repr=False)   # per-seed held-out example scores (paired)
    kl: float | None = None                # mean KL divergence to a teacher over seeds, when measured

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
        out = {k: v for k, v in asdict(self).items() if k != "examples"}
        return {**out, "mean": self.mean, "sd": self.sd, "paired": bool(self.examples)}


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
    stages: list[dict] = field(default_factory=list)   # the evidence's stages (e.g. a race), as measured

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
        a.examples += _examples(m.detail)
        kls = [x for x in (m.detail.get("kl") if isinstance(m.detail.get("kl"), list) else [m.detail.get("kl")])
               if isinstance(x, (int, float))]
        a.kl = sum(kls) / len(kls) if kls else a.kl
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
    stages = list(getattr(ev, "stages", None) or [])            # what the strategy measured before `measured`
    raced = race_contrasts(stages, ev.candidates, pick_choice, scored)   # a race's two sides: its paired gap
    contrasts = [raced.get(key(a.choice)) or compare(pick, a, noise) for a in scored] if pick.scores else []
    lead = next((c for c in contrasts if c.other is runner), None)
    margin, se = (lead.margin, lead.se) if lead else (None, None)
    points = choice_point_verdicts(ev, pick_choice)
    add_point_contrasts(points, pick, archs, noise)
    level, why = confidence(ev, pick, contrasts, agreeing, points)
    why = "; ".join(filter(None, [race_reason(contrasts, ev.metric), why]))
    unknown = sorted({t for st in stages for t in st.get("no_evidence") or []})
    if unknown and level != "none":   # a candidate the search could not judge: at most weak, and said first
        level, why = "weak", f"no evidence on {', '.join(unknown)}: untested (see the warnings); {why}"
    short, short_warn = short_races(stages)
    if short and level != "none":      # lost only a shorter race: at most weak, and said first
        level, why = "weak", f"{short}; {why}"
    warns = warnings_for(ev, pick, runner, margin, se, agreeing, points, archs, level)
    warns += [Warn(**w) for st in stages for w in ([st["warning"]] if st.get("warning") else []) +
              list(st.get("warnings") or [])] + ([short_warn] if short_warn else []) + deferred_races(stages)
    headline = (f"no confident pick: the search leaned to {pick.name} ({why})" if level == "none"
                else f"pick {pick.name}, confidence {level} ({why})")
    steps = max((m.steps for m in ev.measured), default=None)
    return Recommendation(ev.strategy, ev.metric, ev.cost_kind, level, headline, pick, runner, list(ev.seeds),
                          agreeing, margin, se, points, archs, warns, steps, ev.wall_seconds, ev.reference_seconds,
                          stages)


def _gap(c: Contrast, metric: str) -> str:
    se = f" +-{metric_delta(metric, c.se)}" if c.se else ""
    return f"{'+' if c.margin <= 0 else '-'}{metric_delta(metric, abs(c.margin))}{se}"


def layer_ties(points: list[dict]) -> str:
    """"; per layer, L0: local ties within noise": a replacement at one choice point that ties (measured
    between two architectures differing only there) although no whole architecture scored ties the pick."""
    tied = [f"{p['node']}: {c['type']}" for p in points for c in (p.get("contrasts") or []) if c["verdict"] == "tied"]
    if not tied:
        return ""
    more = f" and {len(tied) - 2} more" if len(tied) > 2 else ""
    return f"; per layer, {', '.join(tied[:2])}{more} {'tie' if len(tied) > 1 else 'ties'} within noise"


def confidence(ev: Evidence, pick: Architecture, contrasts: list[Contrast], agreeing: int,
               points: list[dict]) -> tuple[str, str]:
    """(level, a short reason); the rule is docs/recommendation.md."""
    n, m = len(ev.picks), ev.metric
    if n > 1 and agreeing * 2 <= n:
        return "none", f"only {agreeing}/{n} seeds picked it"
    beaten = [c for c in contrasts if c.verdict == "better" and not cheaper(pick, c.other)]
    if beaten:
        return "none", f"{beaten[0].other.name} scores higher ({_gap(beaten[0], m)}) at no more cost"
    trial = [c for c in contrasts if c.other.source in TRIAL]
    runner = max(contrasts, key=lambda c: c.other.mean, default=None)
    if pick.source in TRIAL and runner is not None and runner.other.source in TRIAL:
        if all(c.se is None for c in trial):
            return ("weak", "ahead on its own scores, but the noise is unknown (one seed, evaluation size not given)"
                    if runner.margin > 0 else "the evidence does not separate the candidates")
        decisive = [p["node"] for p in points if p["contrasts"] and p["decided"]]
        also = f"; decided at {', '.join(decisive)}" if decisive and len(decisive) < len(points) else ""
        known = [c for c in trial if c.se is not None]
        better = [c for c in known if c.verdict == "better"]
        if better:
            return "weak", f"{better[0].other.name} scores higher ({_gap(better[0], m)}) at a higher cost: the pick " \
                           f"trades metric for cost"
        tied = [c for c in known if c.verdict == "tied"]
        lower = [c for c in tied if cheaper(c.other, pick)]
        if lower:
            best = min(lower, key=lambda c: c.margin)
            return "weak", f"{best.other.name} ties it within noise ({_gap(best, m)}) at lower cost{also}"
        if tied:
            names = ", ".join(c.other.name for c in tied[:2]) + (f" and {len(tied) - 2} more" if len(tied) > 2 else "")
            return "moderate", f"tied within noise with {names}, and the cheapest of the tie{also}"
        z = min(c.z for c in known)
        if n > 1 and agreeing == n and len(pick.scores) > 1:
            return "strong", f"{agreeing}/{n} seeds, every other architecture at least {z:.1f} standard errors " \
                             f"below{layer_ties(points)}"
        return "moderate", f"every other architecture at least {z:.1f} standard errors below" + \
            ("" if n > 1 else ", one seed") + layer_ties(points)
    if runner is not None and runner.z is not None and runner.z >= 1:
        return "weak", f"supernet estimate {runner.z:.1f} standard errors ahead; no standalone score"
    decided = [p for p in points if p["decided"]]
    if decided and len(decided) == len(points):
        return "weak", "decisive supernet weights; no standalone score"
    if runner is not None and runner.margin > 0:
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
