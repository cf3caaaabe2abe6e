"""Brute force by validation (benchmarks/fidelity_brute.py) on small synthetic standalone tables: no training."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from fidelity_brute import STRATEGY, brute_force_rows, on_pareto_front  # noqa: E402


def run(test: float, val: float, flops: float = 1e6, cpu: float = 10.0) -> dict:
    return {"test": test, "val": val, "flops": flops, "cpu_seconds": cpu}


# local is best on test (mean .70, softmax .67, linear .665); at seed 0 linear has the best validation, at seed 1 local
ALONE = {"softmax": [run(0.66, 0.60, 2e6), run(0.68, 0.61, 2e6)],
         "linear": [run(0.67, 0.65), run(0.66, 0.59)],
         "local": [run(0.69, 0.63), run(0.71, 0.64)]}


def test_the_pick_is_the_best_validation_at_each_seed_scored_by_its_mean_test():
    rows = brute_force_rows("t", ALONE, [0, 1], [None], one_training=10.0)
    assert [r["seed"] for r in rows] == [0, 1] and {r["strategy"] for r in rows} == {STRATEGY}
    first, second = rows
    assert first["pick"] == "linear" and first["rank"] == 3
    assert first["delta"] == pytest.approx(0.665 - 0.70) and not first["within_1pt"]
    assert (first["pick_val"], first["pick_test"]) == (0.65, 0.67)
    assert second["pick"] == "local" and second["rank"] == 1 and second["delta"] == 0 and second["within_1pt"]
    assert second["tau"] == 1.0                  # validation order local > softmax > linear = the test order
    assert first["cost_x"] == pytest.approx(3.0)  # three trainings of 10 CPU seconds each


def test_a_pick_within_one_point_of_the_best_counts_as_within():
    alone = {"a": [run(0.700, 0.50)], "b": [run(0.695, 0.60)]}
    (row,) = brute_force_rows("t", alone, [0], [None], one_training=1.0)
    assert row["pick"] == "b" and row["rank"] == 2 and row["within_1pt"]


def test_a_cost_term_trades_validation_for_flops_and_the_pick_is_checked_against_the_front():
    alone = {"softmax": [run(0.80, 0.80, 4e6)], "linear": [run(0.795, 0.78, 1e6)]}
    plain, costed = brute_force_rows("t", alone, [0], [None, 0.5], one_training=1.0)
    assert plain["pick"] == "softmax" and plain["cost_weight"] is None and not plain["pareto"]
    assert costed["pick"] == "linear" and costed["cost_weight"] == 0.5 and costed["pareto"]


def test_pareto_front_ties_within_a_point_and_needs_one_percent_fewer_flops():
    mean, flops = {"a": 0.80, "b": 0.795, "c": 0.70}, {"a": 4e6, "b": 1e6, "c": 0.5e6}
    assert on_pareto_front(0.795, 1e6, mean, flops) and on_pareto_front(0.70, 0.5e6, mean, flops)
    assert not on_pareto_front(0.80, 4e6, mean, flops)            # b ties it at a quarter of the FLOPs
    assert on_pareto_front(0.80, 4e6, mean, {**flops, "b": 3.99e6})  # 0.25% fewer FLOPs is not cheaper


def test_a_mix_comparison_separates_seed_noise_from_test_example_noise():
    from fidelity_hetero import compare

    # two seeds, four examples: the mix is right on one more example at both seeds
    mix = [[1, 1, 1, 0], [1, 1, 0, 1]]
    other = [[1, 1, 0, 0], [1, 0, 0, 1]]
    c = compare(mix, other)
    assert c["diffs"] == [0.25, 0.25] and c["mean"] == 0.25
    assert c["se_seeds"] == 0                     # the same gain at both seeds
    # seed-averaged per example: 0, .5, .5, 0 -> sample sd 0.2887, over sqrt(4 examples)
    assert c["se_examples"] == pytest.approx(0.2887 / 2, abs=1e-4)
    assert c["se_total"] == pytest.approx(c["se_examples"]) and c["z_total"] == pytest.approx(0.25 / 0.14434, abs=1e-3)
