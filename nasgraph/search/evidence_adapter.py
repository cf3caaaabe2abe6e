"""Evidence from today's supernet search outcome (search.json), until the strategies return their own.

Per seed, the supernet's shared weights score each homogeneous architecture and the seed's pick on
the validation split with one-hot mixing (`subnet_scores`); these are supernet estimates, marked
detail["source"] = "shared-weights", never standalone scores.
"""
from __future__ import annotations

import json

from nasgraph.search.derive import choice_mixing
from nasgraph.search.evidence import Evidence, Measured
from nasgraph.search.objective import CostTable
from nasgraph.search.recommend import homogeneous


def subnet_scores(model, labels: dict[str, list[str]], pick: dict[str, list[int]], evaluate,
                  score=lambda metrics: metrics["acc"]) -> list[dict]:
    """[{choice, score, n}] for each homogeneous architecture and `pick`, run inside the supernet.

    evaluate(model) -> {"acc": ..., "n": ...} on a split the weights did not train on; score(that dict)
    -> the higher-is-better task metric (Task.score: acc, answer_acc, -bits_per_byte).
    """
    groups = {n: len(idx) for n, idx in pick.items()}
    out = []
    for choice in [*homogeneous(labels, groups), pick]:
        if any(r["choice"] == choice for r in out):
            continue
        with choice_mixing(model, choice):
            result = evaluate(model)
        out.append({"choice": choice, "score": score(result), "n": result.get("n")})
    return out


def evidence_from_outcome(outcome: dict, cost: CostTable) -> Evidence:
    """search.json's outcome (one record per seed) -> Evidence."""
    labels, per_seed = outcome["candidates"], outcome["per_seed"]
    to_unit = (lambda c: c / 1000) if cost.kind == "latency" else (lambda c: c)   # latency table: us -> ms
    measured: dict[str, Measured] = {}
    for r in per_seed:
        for s in r.get("subnet_scores", []):
            key = json.dumps(s["choice"], sort_keys=True)
            kind = "pick" if s["choice"] == r["choice"] else "homogeneous"
            m = measured.setdefault(key, Measured(
                s["choice"], {n: [labels[n][i] for i in idx] for n, idx in s["choice"].items()}, [],
                to_unit(cost.of_choice(s["choice"])), r["final"]["steps"], kind,
                {"source": "shared-weights", "eval_n": s.get("n")}))
            m.scores.append(s["score"])
    unit_scores = [r["scores"] for r in per_seed if r.get("scores")]
    return Evidence(
        strategy=outcome["strategy"], metric=outcome.get("metric", "acc"), cost_kind="latency_ms" if cost.kind == "latency" else "flops",
        cost_range=(to_unit(cost.min_total), to_unit(cost.max_total)), candidates=labels,
        seeds=list(outcome["seeds"]), picks=[r["choice"] for r in per_seed], measured=list(measured.values()),
        wall_seconds=sum(r["final"].get("seconds", 0.0) for r in per_seed),
        probabilities=[r["probs"] for r in per_seed] if all("probs" in r for r in per_seed) else None,
        unit_scores=unit_scores or None)
