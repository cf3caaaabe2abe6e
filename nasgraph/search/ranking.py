"""How well a weight-sharing supernet ranks sub-networks against their standalone training.

`stratified_sample` picks the sub-networks to check before anything is trained (spread over a cost,
independent of any score); `rank_agreement` compares two sets of per-example records (the supernet's
estimates and the standalone trainings, both scored on the same held-out examples; the records of
nasgraph.search.paired.example_scores) by Kendall tau, with a bootstrap interval over the examples,
and says which pairs the standalone scores resolve at all (paired difference beyond `z` standard
errors) and how many of those the supernet orders the same way.
"""
from __future__ import annotations

import math
import random
from itertools import combinations
from typing import Callable

import numpy as np

from nasgraph.graph.subnet import SubNet, sample
from nasgraph.search.paired import paired_difference


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall tau-b (a pair tied in either list counts as neither concordant nor discordant)."""
    conc = disc = ties_a = ties_b = 0
    for i, j in combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue
        if da == 0:
            ties_a += 1
        elif db == 0:
            ties_b += 1
        elif (da > 0) == (db > 0):
            conc += 1
        else:
            disc += 1
    denom = math.sqrt((conc + disc + ties_a) * (conc + disc + ties_b))
    return (conc - disc) / denom if denom else 0.0


def null_tau_sd(n: int) -> float:
    """Standard deviation of Kendall tau between two unrelated rankings of n items."""
    return math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))


def stratified_sample(space: dict, cost: Callable[[SubNet], float], k: int, rng: random.Random,
                      pool: int = 400) -> list[SubNet]:
    """`k` sub-networks spanning the space: `pool` distinct random ones sorted by `cost`, cut into k
    strata of equal size, one drawn from each (cheapest stratum first)."""
    seen: dict[SubNet, float] = {}
    for _ in range(pool * 20):
        if len(seen) >= pool:
            break
        sub = sample(space, rng)
        if sub not in seen:
            seen[sub] = cost(sub)
    ranked = sorted(seen, key=lambda s: (seen[s], s.label()))
    if len(ranked) < k:
        raise ValueError(f"the space has {len(ranked)} sub-networks, fewer than the {k} asked for")
    edges = [round(i * len(ranked) / k) for i in range(k + 1)]
    return [rng.choice(ranked[lo:hi]) for lo, hi in zip(edges, edges[1:])]


def _matrix(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray([r["values"] for r in records], dtype=np.float64)                # (M, N)
    counts = np.asarray([r.get("counts") or [1] * len(r["values"]) for r in records], dtype=np.float64)
    return values, counts


def rank_agreement(estimates: list[dict], truth: list[dict], *, z: float = 2.0, boot: int = 1000,
                   seed: int = 0) -> dict:
    """Kendall tau between `estimates` and `truth` (examples records of the same models, in order, all on
    the same examples), its 95% bootstrap interval over examples (evaluation noise only: not the noise
    of training), the null SD, and the pairs `truth` resolves (|paired difference| > z SE)."""
    est_v, est_c = _matrix(estimates)
    tru_v, tru_c = _matrix(truth)
    score = lambda v, c, idx: v[:, idx].sum(1) / c[:, idx].sum(1)                    # noqa: E731 (M,)
    every = np.arange(est_v.shape[1])
    tau = kendall_tau(score(est_v, est_c, every).tolist(), score(tru_v, tru_c, every).tolist())
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(boot):
        idx = rng.integers(0, len(every), len(every))                                 # (N,) resampled examples
        taus.append(kendall_tau(score(est_v, est_c, idx).tolist(), score(tru_v, tru_c, idx).tolist()))
    pairs = []
    for i, j in combinations(range(len(truth)), 2):
        found = paired_difference(truth[i], truth[j]), paired_difference(estimates[i], estimates[j])
        if None in found:
            raise ValueError(f"records {i} and {j} did not score the same examples (keys "
                             f"{truth[i].get('key')}, {truth[j].get('key')}): rank agreement needs one slice")
        (d, se), (e, e_se) = found
        pairs.append({"i": i, "j": j, "truth_diff": d, "truth_se": se, "estimate_diff": e, "estimate_se": e_se,
                      "resolved": abs(d) > z * se, "agree": (d > 0) == (e > 0)})
    resolved = [p for p in pairs if p["resolved"]]
    return {"kendall_tau": tau, "tau_ci95": [float(np.percentile(taus, 2.5)), float(np.percentile(taus, 97.5))],
            "null_tau_sd": null_tau_sd(len(truth)), "n": len(truth), "pairs": pairs, "resolved_pairs": len(resolved),
            "resolved_agree": sum(p["agree"] for p in resolved),
            "tau_resolved": kendall_tau_on(resolved)}


def kendall_tau_on(pairs: list[dict]) -> float | None:
    """(concordant - discordant) / pairs over the given pairs (None when there are none)."""
    if not pairs:
        return None
    return sum(1 if p["agree"] else -1 for p in pairs) / len(pairs)
