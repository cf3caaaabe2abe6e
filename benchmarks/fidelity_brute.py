"""Brute force as a user would run it, the ceiling for any search of benchmarks/search_fidelity.py.

Training every homogeneous candidate tells a user their VALIDATION accuracies at the seed they ran,
not the test means over seeds the suite ranks by. So "brute force (val)" picks, per seed, the candidate
with the best validation accuracy (minus the cost term where the regime has one) and is scored like a
search's pick: its mean standalone test accuracy minus the best one's, within 1 point or not, on the
accuracy-vs-FLOPs Pareto front or not, Kendall tau of the validation ranking, and its cost (every
candidate trained once at that seed, in units of one standalone training).
"""
from __future__ import annotations

from itertools import combinations

TIE = 0.01   # one point of accuracy
STRATEGY = "brute force (val)"


def kendall_tau(a: list[float], b: list[float]) -> float:
    pairs = list(combinations(range(len(a)), 2))
    s = sum((1 if (a[i] - a[j]) * (b[i] - b[j]) > 0 else -1 if (a[i] - a[j]) * (b[i] - b[j]) < 0 else 0)
            for i, j in pairs)
    return s / max(1, len(pairs))


def on_pareto_front(acc: float, cost: float, mean: dict[str, float], flops: dict[str, float]) -> bool:
    """No candidate is more than a point better at no more FLOPs, nor as good (within a point) at 1% fewer."""
    return not any(mean[l] > acc + TIE and flops[l] <= cost for l in mean) and \
        not any(mean[l] >= acc - TIE and flops[l] < cost * 0.99 for l in mean)


def brute_force_rows(task: str, alone: dict[str, list[dict]], seeds: list[int], weights: list[float | None],
                     one_training: float) -> list[dict]:
    """One row per (cost weight, seed) in the shape of search_fidelity's search rows. `alone` maps each
    candidate to its standalone runs ({test, val, flops, cpu_seconds}), one per seed, in `seeds` order."""
    mean = {l: sum(r["test"] for r in runs) / len(runs) for l, runs in alone.items()}
    flops = {l: runs[0]["flops"] for l, runs in alone.items()}
    best, top_flops = max(mean.values()), max(flops.values())
    ranking = sorted(mean, key=lambda l: -mean[l])
    rows = []
    for weight in weights:
        for i, seed in enumerate(seeds):
            value = {l: alone[l][i]["val"] - (weight or 0.0) * flops[l] / top_flops for l in alone}
            pick = max(ranking, key=lambda l: value[l])   # a tie goes to the better test mean
            rows.append({"task": task, "strategy": STRATEGY, "seed": seed, "cost_weight": weight, "pick": pick,
                         "rank": 1 + sum(mean[l] > mean[pick] + 1e-9 for l in ranking),
                         "delta": mean[pick] - best, "within_1pt": mean[pick] >= best - TIE,
                         "tau": round(kendall_tau([value[l] for l in ranking], [mean[l] for l in ranking]), 3),
                         "pareto": on_pareto_front(mean[pick], flops[pick], mean, flops),
                         "cost_x": sum(alone[l][i]["cpu_seconds"] for l in alone) / one_training,
                         "wall_x": None, "flops_x": flops[pick] / top_flops, "confidence": "-", "gaps": {},
                         "retrained": None, "pick_val": alone[pick][i]["val"], "pick_test": alone[pick][i]["test"]})
    return rows
