"""Paired comparisons on shared held-out examples: their error, the recommendation built on them
(per choice point contrasts, ties at lower cost) and the teacher's tie rule."""
from __future__ import annotations

import math
import random
from types import SimpleNamespace

import torch

from nasgraph.search.evidence import Evidence, Measured
from nasgraph.search.paired import ReferenceOutputs, example_scores, paired_difference, paired_over_seeds
from nasgraph.search.recommend import recommend
from nasgraph.search.strategies.teacher import greedy, ties
from nasgraph.tasks.base import Split

CANDS = {"L0.attention": ["softmax", "linear", "local"], "L1.attention": ["softmax", "linear", "local"]}
COST = {0: 100.0, 1: 60.0, 2: 50.0}
N = 1000


def answers(acc: float, flip_from: list[float] | None = None, flips: int = 0, seed: int = 0) -> list[float]:
    """N per-example correct flags at accuracy `acc`, or `flip_from` with `flips` answers changed."""
    rng = random.Random(seed)
    if flip_from is None:
        return [1.0 if rng.random() < acc else 0.0 for _ in range(N)]
    out = list(flip_from)
    for i in rng.sample(range(N), flips):
        out[i] = 1.0 - out[i]
    return out


def record(values: list[float], key: str = "arch0") -> dict:
    return {"key": key, "values": values, "counts": None}


def arch(l0: int, l1: int, values: list[float], kind: str = "candidate", source: str = "adapted from the teacher"):
    choice = {"L0.attention": [l0], "L1.attention": [l1]}
    labels = {n: [CANDS[n][i] for i in idx] for n, idx in choice.items()}
    return Measured(choice, labels, [sum(values) / N], COST[l0] + COST[l1], 500, kind,
                    {"source": source, "eval_n": N, "examples": [record(values)]})


def evidence(pick: tuple[int, int], measured: list[Measured]) -> Evidence:
    choice = {"L0.attention": [pick[0]], "L1.attention": [pick[1]]}
    return Evidence("teacher", "acc", "flops", (100.0, 200.0), CANDS, [0], [choice], measured, 10.0)


def test_paired_error_is_smaller_than_unpaired_when_answers_agree():
    a = answers(0.80)
    b = answers(0, flip_from=a, flips=20)                       # the two models differ on 2% of examples
    diff, se = paired_difference(record(a), record(b))
    p = sum(a) / N
    unpaired = math.sqrt(2 * p * (1 - p) / N)
    assert abs(diff - (sum(a) - sum(b)) / N) < 1e-12
    assert se < unpaired / 2
    assert paired_difference(record(a), record(b, key="another slice")) is None   # not the same examples


def test_paired_over_seeds_takes_the_seed_spread_when_it_is_larger():
    a0, a1 = answers(0.8, seed=1), answers(0.8, seed=2)
    b0, b1 = answers(0, a0, 10, seed=3), answers(0, a1, 200, seed=4)            # the gap moves between seeds
    mean, se, seeds = paired_over_seeds([record(a0, "s0"), record(a1, "s1")], [record(b0, "s0"), record(b1, "s1")])
    one = [paired_difference(record(a0, "s0"), record(b0, "s0")), paired_difference(record(a1, "s1"), record(b1, "s1"))]
    assert seeds == 2 and abs(mean - (one[0][0] + one[1][0]) / 2) < 1e-12
    assert se >= math.sqrt(one[0][1] ** 2 + one[1][1] ** 2) / 2


def test_example_scores_sum_to_the_score_and_kl_to_itself_is_zero():
    torch.manual_seed(0)
    emb, head = torch.nn.Embedding(12, 8), torch.nn.Linear(8, 3)
    model = torch.nn.Sequential()
    model.forward = lambda tokens: head(emb(tokens).mean(1))                  # (B, T) -> (B, 3)
    model.training = False
    rng = random.Random(0)
    split = Split([[1] + [rng.randrange(2, 12) for _ in range(rng.randint(3, 9))] for _ in range(50)],
                  [rng.randrange(3) for _ in range(50)])
    task = SimpleNamespace(metric="acc", score=lambda m: m["acc"],
                           metrics_from=lambda loss, correct, n, split: {"loss": loss / n, "acc": correct / n, "n": n})
    out = example_scores(model, split, 8, task, reference=model)
    assert len(out["values"]) == 50 and out["counts"] is None
    assert abs(sum(out["values"]) / 50 - out["score"]) < 1e-9
    assert abs(out["kl"]) < 1e-6


def test_reference_outputs_are_computed_once_and_give_the_same_kl():
    torch.manual_seed(0)
    emb, head, other = torch.nn.Embedding(12, 8), torch.nn.Linear(8, 3), torch.nn.Linear(8, 3)
    student, teacher = torch.nn.Sequential(), torch.nn.Sequential()
    student.forward = lambda tokens: other(emb(tokens).mean(1))                # (B, T) -> (B, 3)
    teacher.forward = lambda tokens: head(emb(tokens).mean(1))
    student.training = teacher.training = False
    teacher.eval = teacher.to = lambda *a: teacher
    rng = random.Random(1)
    split = Split([[1] + [rng.randrange(2, 12) for _ in range(6)] for _ in range(30)], [rng.randrange(3)] * 30)
    task = SimpleNamespace(metric="acc", score=lambda m: m["acc"],
                           metrics_from=lambda loss, correct, n, split: {"loss": loss / n, "acc": correct / n, "n": n})
    loads = []
    shared = ReferenceOutputs(lambda: loads.append(1) or teacher)
    direct = example_scores(student, split, 8, task, reference=teacher)
    first, again = (example_scores(student, split, 8, task, reference=shared) for _ in range(2))
    assert loads == [1] and direct["kl"] > 0
    assert abs(first["kl"] - direct["kl"]) < 1e-9 and abs(again["kl"] - direct["kl"]) < 1e-9


def _teacher_evidence(l1_local_flips: int) -> Evidence:
    """Teacher softmax at 0.80; layer 0 replaced: -30 points; layer 1 replaced by local: `flips` answers differ."""
    teacher = answers(0.80)
    worse = [v if i % 3 else 0.0 for i, v in enumerate(teacher)]          # a third of the answers lost
    l1 = answers(0, teacher, l1_local_flips, seed=5)
    return [arch(0, 0, teacher, "homogeneous", "trial"), arch(1, 0, worse), arch(2, 0, worse),
            arch(0, 1, worse), arch(0, 2, l1)]


def test_a_cheaper_layer_that_ties_is_named_and_the_decisive_layer_is_decided():
    rec = recommend(evidence((0, 0), _teacher_evidence(10)))
    assert rec.confidence == "weak" and "L0 softmax; L1 local" in rec.headline and "lower cost" in rec.headline
    l0, l1 = rec.choice_points
    assert l0["decided"] and {c["verdict"] for c in l0["contrasts"]} == {"worse"}
    assert not l1["decided"] and any(c["type"] == "local" and c["verdict"] == "tied" and c["cheaper"]
                                     for c in l1["contrasts"])


def test_the_cheapest_of_a_tie_that_dominates_the_rest_is_moderate_with_one_seed():
    rec = recommend(evidence((0, 2), _teacher_evidence(10)))
    assert rec.pick.name == "L0 softmax; L1 local" and rec.confidence == "moderate"
    assert rec.margin_se < 0.01                                             # paired: far below binomial noise
    assert "one_seed" in {w.code for w in rec.warnings}


def test_a_clear_paired_win_is_moderate_and_noise_is_not():
    teacher = answers(0.80)
    worse = [v if i % 3 else 0.0 for i, v in enumerate(teacher)]
    clear = recommend(evidence((0, 0), [arch(0, 0, teacher, "homogeneous", "trial"), arch(1, 1, worse, "homogeneous"),
                                        arch(2, 2, worse, "homogeneous")]))
    assert clear.confidence == "moderate" and "standard errors below" in clear.headline
    coin = [answers(0.5, seed=s) for s in range(3)]
    noise = recommend(evidence((0, 0), [arch(0, 0, coin[0], "homogeneous", "trial"),
                                        arch(1, 1, coin[1], "homogeneous"), arch(2, 2, coin[2], "homogeneous")]))
    assert noise.confidence in ("none", "weak")


def test_teacher_takes_a_replacement_that_ties_on_the_metric_despite_its_kl():
    tied = {"node": "L1", "index": 2, "kl": 0.12, "saving": 10.0, "drop": -0.004, "drop_se": 0.004}
    noisy = {"node": "L0", "index": 1, "kl": 0.12, "saving": 10.0, "drop": 0.0, "drop_se": 0.02}
    assert ties(tied, 100.0, 0.0, 0.01) and not ties(noisy, 100.0, 0.0, 0.01)
    taken = greedy([tied, noisy], start_cost=100.0, cost_max=100.0, weight=0.0, target=None, tolerance=0.02,
                   tie_margin=0.01)
    assert [(r["node"], r["index"]) for r in taken] == [("L1", 2)]
    assert greedy([tied, noisy], 100.0, 100.0, 0.0, None, 0.02, tie_margin=0.0) == []   # the KL rule alone


def test_identical_answers_are_a_tie_not_an_error():
    same = answers(0.7)
    rec = recommend(evidence((2, 2), [arch(0, 0, same, "homogeneous", "trial"), arch(2, 2, same, "homogeneous")]))
    assert rec.margin == 0 and rec.margin_se == 0 and rec.confidence == "moderate"    # the cheaper of a tie


def test_a_per_layer_tie_is_named_beside_the_whole_architecture_margin():
    from nasgraph.search.recommend import layer_ties

    points = [{"node": "L0", "contrasts": [{"type": "local", "verdict": "tied"}, {"type": "linear", "verdict": "worse"}]},
              {"node": "L1", "contrasts": [{"type": "softmax", "verdict": "worse"}]}, {"node": "L2", "contrasts": None}]
    assert layer_ties(points) == "; per layer, L0: local ties within noise"
    points[1]["contrasts"][0]["verdict"] = "tied"
    assert layer_ties(points) == "; per layer, L0: local, L1: softmax tie within noise"
    assert layer_ties(points[2:]) == ""
