"""The pieces of a recommendation's confidence: per choice point verdicts, seed spread, warnings.

Thresholds (docs/recommendation.md): mixing weights are "flat" at a normalised entropy of at least
FLAT_ENTROPY; a choice point is decided by its weights when, in every group, the picked candidate's
probability leads every other by at least DECIDED_GAP and every seed picked the same there; by unit
scores when the pick's best unit score leads the runner-up's by at least two standard deviations
over seeds (and the seeds agree).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from nasgraph.search.contrasts import cheaper_or_equal, contrast_text
from nasgraph.textfmt import metric_delta

FLAT_ENTROPY = 0.99
DECIDED_GAP = 0.05


@dataclass
class Warn:
    code: str        # flat_alphas | undecided | one_seed | seeds_disagree | within_noise | short_budget |
                     # no_standalone_score | outscored | collapse
    message: str
    fix: str


def pooled_sd(score_lists: list[list[float]]) -> float | None:
    """Seed spread pooled over the architectures scored on at least two seeds."""
    num = den = 0.0
    for s in score_lists:
        if len(s) > 1:
            m = sum(s) / len(s)
            num += sum((x - m) ** 2 for x in s)
            den += len(s) - 1
    return math.sqrt(num / den) if den else None


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0) / math.log(len(p)) if len(p) > 1 else 0.0


def _mean(rows: list[list[float]]) -> list[float]:
    return [sum(col) / len(col) for col in zip(*rows)]


def choice_point_verdicts(ev, pick: dict[str, list[int]]) -> list[dict]:
    """Per choice point: the pick, the runner-up type (the best candidate not picked), seed agreement and
    the supernet's own evidence: the pick's value against the runner-up's (probability or unit score)."""
    n = len(ev.picks)
    out = []
    for node, cands in ev.candidates.items():
        k = sum(p[node] == pick[node] for p in ev.picks)
        row = {"node": node, "candidates": cands, "pick": [cands[i] for i in pick[node]], "seeds_agreeing": k,
               "seeds": n, "runner_up": None, "decided": False, "entropy": None, "gap": None,
               "probabilities": None, "unit_scores": None, "unit_sd": None, "values": None,
               "contrasts": None}
        units = [s[node] for s in (ev.unit_scores or []) if s and node in s]
        probs = [p[node] for p in (ev.probabilities or []) if p and node in p]
        others = [c for c in range(len(cands)) if c not in pick[node]]
        if units:   # accuracy drop when a unit is masked: mean over seeds and groups, finite only
            per_seed = [[_finite_mean([g[c] for g in u]) for c in range(len(cands))] for u in units]
            mean = _mean(per_seed)
            sd = [pooled_sd([[s[c] for s in per_seed]]) for c in range(len(cands))] if n > 1 else None
            spread = max((x for x in (sd or []) if x is not None), default=None)
            row.update(unit_scores=mean, unit_sd=sd)
            if others:
                runner = max(others, key=lambda c: mean[c])
                best = max(mean[c] for c in pick[node])
                row.update(runner_up=cands[runner], values=(best, mean[runner]),
                           decided=spread is not None and best - mean[runner] >= 2 * spread and k == n)
        elif probs:
            groups = [_mean([p[g] for p in probs]) for g in range(len(probs[0]))]       # per group, over seeds
            mean = _mean(groups)
            row.update(probabilities=mean, entropy=sum(_entropy(g) for g in groups) / len(groups))
            if others:
                runner = max(others, key=lambda c: mean[c])
                lead = min(g[c] - max(x for i, x in enumerate(g) if i != c) for g, c in zip(groups, pick[node]))
                row.update(runner_up=cands[runner], gap=lead, decided=lead >= DECIDED_GAP and k == n,
                           values=(max(mean[c] for c in pick[node]), mean[runner]))
        out.append(row)
    return out


def _finite_mean(xs: list[float]) -> float:
    xs = [float(x) for x in xs if x is not None and math.isfinite(float(x))]
    return sum(xs) / len(xs) if xs else 0.0


def evidence_text(row: dict, metric: str) -> str:
    """ "3/3 seeds, p 0.52 vs 0.31" | "1/1 seed, unit score 4.1 pts vs 0.2 pts" | "2/2 seeds, weights flat" |
    "1/1 seed; linear -29.0 +-1.3 pts (decisive)": the pick's value against the runner-up's, or each
    other type's measured gap there."""
    seeds = f"{row['seeds_agreeing']}/{row['seeds']} seed{'s' if row['seeds'] > 1 else ''}"
    if row.get("contrasts"):
        return seeds + "; " + "; ".join(contrast_text(c, metric) for c in row["contrasts"])
    if row["probabilities"] is not None and row["entropy"] >= FLAT_ENTROPY:
        return seeds + f", weights flat (entropy {row['entropy']:.3f})"
    if row["values"] is None:
        return seeds
    mine, theirs = row["values"]
    if row["unit_scores"] is not None:
        return seeds + f", unit score {metric_delta(metric, mine)} vs {metric_delta(metric, theirs)}"
    return seeds + f", p {mine:.2f} vs {theirs:.2f}"


def warnings_for(ev, pick, runner, margin, se, agreeing, points, archs, level) -> list[Warn]:
    """Plain warnings, each with what to change."""
    out, n, m = [], len(ev.picks), ev.metric
    steps = max((x.steps for x in ev.measured), default=0)
    budget = f"{steps} steps" if steps else "the budget"
    flat = [p for p in points if p["entropy"] is not None and p["entropy"] >= FLAT_ENTROPY]
    if flat and len(flat) == len(points):
        worst = max((abs(p["gap"]) for p in flat if p["gap"] is not None), default=0.0)
        out.append(Warn("flat_alphas", f"the mixing weights never moved from uniform (entropy "
                        f"{min(p['entropy'] for p in flat):.3f}, pick and runner-up within {worst:.4f}): "
                        f"the pick is their noise",
                        "raise search.steps or search.alpha_lr, warm the weights up first (search.warmup_epochs), "
                        "or use a strategy that scores the candidates"))
    else:
        undecided = [p["node"] for p in points if not p["decided"]]
        if undecided and pick.source not in ("standalone", "adapted"):
            out.append(Warn("undecided", f"{', '.join(undecided)}: the supernet does not separate the top two "
                            f"candidates (or the seeds differ there)", "raise search.steps; add seeds"))
    if n == 1:
        paired = " (the errors shown cover the held-out examples only)" if pick.examples else ""
        out.append(Warn("one_seed", f"one seed: the spread over training seeds is unknown{paired}",
                        "set search.seeds: [0, 1, 2] to see whether the pick holds"))
    elif agreeing < n:
        name = {json.dumps(a.choice, sort_keys=True): a.name for a in archs}
        names = "; ".join(f"seed {s}: {name[json.dumps(p, sort_keys=True)]}" for s, p in zip(ev.seeds, ev.picks))
        out.append(Warn("seeds_disagree", f"seeds disagree ({agreeing}/{n} picked {pick.name}): {names}",
                        "more steps or seeds; the vote over seeds is shown"))
    if margin is not None and se:
        z = margin / se
        if z <= -1:
            cheaper = cheaper_or_equal(runner, pick)
            out.append(Warn("outscored", f"{runner.name} scores {metric_delta(m, -margin)} above the pick "
                            f"({-z:.1f} standard errors)" + (" at no more cost" if cheaper else " at a higher cost"),
                            "prefer the runner-up" if cheaper else "weigh its cost against the gain"))
        elif abs(z) < 2:
            lead = "leads" if margin >= 0 else "trails"
            out.append(Warn("within_noise", f"the pick {lead} {runner.name} by {metric_delta(m, abs(margin))} "
                            f"({abs(z):.1f} standard errors of {metric_delta(m, se)}): within noise",
                            "more seeds (search.seeds) and more steps (search.steps)"))
        scored = [a for a in archs if a.scores]
        if len(scored) > 2 and max(a.mean for a in scored) - min(a.mean for a in scored) < 2 * se:
            out.append(Warn("short_budget", f"{budget} did not separate the candidates: all {len(scored)} "
                            f"scored architectures lie within {metric_delta(m, 2 * se)}", "raise search.steps"))
    if pick.source not in ("standalone", "adapted"):
        how = "shared-weight scores read off the supernet" if pick.scores else "the supernet's mixing weights"
        out.append(Warn("no_standalone_score", f"the pick rests on {how}, not on a score of the architecture "
                        f"trained on its own", "train the pick and the runner-up standalone (nasgraph derive RUN "
                        "-o d.yaml; nasgraph train d.yaml), or use a strategy that does"))
        kinds = {l for p in points for l in p["pick"]}
        if len(kinds) == 1 and len(points) > 1 and all(p["decided"] for p in points):
            out.append(Warn("collapse", f"every choice went to {next(iter(kinds))}: weight-sharing search "
                            f"favours the type that learns fastest early", "confirm with standalone scores"))
    return out
