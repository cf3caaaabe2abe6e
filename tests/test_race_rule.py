"""race_teacher's race rule (nasgraph.search.strategies._race): paired verdicts at equal steps, the
default teacher kept to the last rung, a challenger taking the teacher's role only when it beats it."""
from __future__ import annotations

import pytest

from nasgraph.search.strategies._race import judge_rung, rung_steps


def _record(correct: list[int]) -> dict:
    """A trial record scored on the same held-out examples (paired)."""
    return {"score": sum(correct) / len(correct), "examples": {"key": "k", "values": correct, "counts": None}}


def _rung(hits: dict[str, int], n: int = 400, default: str = "softmax", last: bool = False, cost: dict | None = None,
          shift: dict | None = None):
    """Entrants that answer hits[label] of n shared examples right: examples shift[label] (default 0) on."""
    at = lambda l, i: int((i - (shift or {}).get(l, 0)) % n < hits[l])  # noqa: E731
    records = {l: _record([at(l, i) for i in range(n)]) for l in hits}
    utility = {l: r["score"] - (cost or {}).get(l, 0.0) for l, r in records.items()}
    return judge_rung(records, utility, default, last)


def test_rungs_are_shares_of_the_budget():
    assert rung_steps([0.1, 0.2], 3000) == [300, 600]
    assert rung_steps([0.2, 0.1, 0.1], 10) == [1, 2]


def test_an_early_leader_cannot_drop_the_default_before_the_last_rung():
    # local learns fastest early (ListOps): far ahead of softmax at the first rung
    v = _rung({"softmax": 200, "linear": 150, "local": 300})
    verdicts = {r["candidate"]: r["verdict"] for r in v["rows"]}
    assert v["leader"] == "local" and verdicts == {"local": "leader", "softmax": "kept: default", "linear": "dropped"}
    assert v["alive"] == ["softmax", "local"] and v["teacher"] is None


def test_a_challenger_becomes_the_teacher_only_when_it_beats_the_default_at_the_last_rung():
    won = _rung({"softmax": 250, "local": 290}, last=True)
    assert won["teacher"] == "local" and won["alive"] == []
    tied = _rung({"softmax": 250, "local": 256}, last=True, shift={"local": 100})   # ahead within noise
    assert tied["leader"] == "local" and tied["teacher"] == "softmax"
    assert {r["candidate"]: r["verdict"] for r in tied["rows"]}["softmax"] == "kept"


def test_the_race_ends_when_the_default_beats_every_challenger():
    v = _rung({"softmax": 300, "linear": 200, "local": 100})
    assert v["alive"] == [] and v["teacher"] == "softmax"


def test_the_cost_term_counts_exactly():
    # equal scores, linear much cheaper: with a cost term the cheap type leads and beats the default
    v = _rung({"softmax": 300, "linear": 300}, last=True, cost={"softmax": 0.4, "linear": 0.1})
    assert v["leader"] == "linear" and v["teacher"] == "linear"
    row = next(r for r in v["rows"] if r["candidate"] == "softmax")
    assert row["behind"] == pytest.approx(0.3) and row["se"] == 0.0
