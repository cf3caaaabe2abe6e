"""Supernet ranking checks (nasgraph.search.ranking): Kendall tau, the FLOPs-stratified sample, and the
agreement of two sets of per-example records with resolvable pairs and a bootstrap interval."""
from __future__ import annotations

import random

import numpy as np
import pytest

from nasgraph.search.ranking import kendall_tau, null_tau_sd, rank_agreement, stratified_sample

SPACE = {"d_model": [32, 64, 96], "n_heads": [2, 4], "n_layers": [1, 2, 3], "ffn_mult": [[1, 2, 4]] * 3,
         "attention": [2, 2, 2]}


def test_kendall_tau_orders_ties_and_reversal():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / np.sqrt(6))    # tau-b with a tie
    assert null_tau_sd(8) == pytest.approx(0.2887, abs=1e-4)


def test_stratified_sample_spans_the_cost_range():
    cost = lambda s: s.d_model ** 2 * sum(1 + m for m in s.ffn_mult)  # noqa: E731
    picked = stratified_sample(SPACE, cost, 6, random.Random(0), pool=120)
    costs = [cost(s) for s in picked]
    assert len(set(picked)) == 6 and costs == sorted(costs)
    pool = stratified_sample(SPACE, cost, 120, random.Random(0), pool=120)      # every stratum one sub-network
    assert costs[0] <= np.percentile([cost(s) for s in pool], 100 / 6)
    assert costs[-1] >= np.percentile([cost(s) for s in pool], 100 - 100 / 6)
    with pytest.raises(ValueError, match="fewer than the 500"):
        stratified_sample({**SPACE, "n_layers": [1], "d_model": [32]}, cost, 500, random.Random(0), pool=600)


def records(means: list[float], noise: float, n: int = 300, seed: int = 0) -> list[dict]:
    """Per-example records of models with these mean scores, on the same n examples."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, 1, n)                                                   # example difficulty
    return [{"key": "k", "values": (m + shared + noise * rng.normal(0, 1, n)).tolist(), "counts": None}
            for m in means]


def test_rank_agreement_counts_resolved_pairs_and_agreement():
    truth = records([0.0, 0.5, 1.0, 1.0], noise=0.3)            # the last two do not differ: unresolved
    same = rank_agreement(records([0.0, 0.4, 0.9, 1.3], noise=0.3, seed=1), truth, boot=200)
    assert same["n"] == 4 and len(same["pairs"]) == 6
    assert same["resolved_pairs"] == 5 and same["resolved_agree"] == 5 and same["tau_resolved"] == 1.0
    assert same["kendall_tau"] > 0.6 and same["tau_ci95"][0] <= same["kendall_tau"] <= same["tau_ci95"][1]
    flipped = rank_agreement(records([1.3, 0.9, 0.4, 0.0], noise=0.3, seed=1), truth, boot=200)
    assert flipped["kendall_tau"] < -0.6 and flipped["resolved_agree"] == 0 and flipped["tau_resolved"] == -1.0
    unresolved = next(p for p in same["pairs"] if (p["i"], p["j"]) == (2, 3))
    assert not unresolved["resolved"] and unresolved["truth_se"] > 0


def test_rank_agreement_refuses_records_of_different_examples():
    truth = records([0.0, 1.0], noise=0.3)
    other = [dict(r, key="other") for r in truth]
    with pytest.raises(ValueError, match="did not score the same examples"):
        rank_agreement(truth, [truth[0], other[1]], boot=10)
