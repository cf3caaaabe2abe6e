"""teacher_race's plan (nasgraph.search.strategies._plan, _budget): where a type is untested by the teacher,
its race keeps its steps under max_cost and the per-layer students give way; the race reuses the held-out
slice's scores and, when cut, scores fewer examples before it trains fewer steps."""
from __future__ import annotations

import json

import pytest

import nasgraph.search.strategies._budget as budget
from nasgraph.cli import main


@pytest.fixture
def planned(tiny_spec, tmp_path, monkeypatch):
    """A tiny teacher_race search (20 steps) with deterministic costs: a training step costs 1 CPU s (one
    standalone training: 20 s), scoring is free, one training spent before each decision. With dcmha among
    the candidates (its student starts its composition weights untrained: untested), every replacement is
    accepted (kl_tolerance 100); dcmha races whatever the pick, as long as the teacher: 10 steps alone."""
    monkeypatch.setattr(budget, "rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "steady_rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.0)
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: self.unit)

    def search(max_cost: str, untested: bool = True, out: str = "run", extra: str = ""):
        spec = tiny_spec("layer", "teacher_race", f", kl_tolerance: 100, margin: 1.0, max_cost: {max_cost}{extra}")
        text = spec.read_text().replace("seeds: [0], steps: 6,", "seeds: [0], steps: 20,")
        if untested:
            text = text.replace("candidates: [softmax, linear, {local: {window: 4}}]",
                                "candidates: [softmax, linear, {local: {window: 4}}, dcmha]")
        spec.write_text(text)
        run = tmp_path / out
        assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
        ev = json.loads((run / "evidence.json").read_text())
        rec = json.loads((run / "recommendation.json").read_text())
        stages = {st["stage"]: st for st in ev["stages"]}
        students = sorted(p.name for p in (run / "trials").glob("student-*"))
        return run, stages, rec, students
    return search


def singles(students: list[str]) -> list[str]:
    """The per-layer students' folders (two layers of different types)."""
    return [s for s in students if len(set(s[len("student-"):-len("-s0")].split("+"))) > 1]


def test_per_layer_students_give_way_so_the_untested_types_race_keeps_its_steps(planned):
    # left for students: (1.6 - 0.02) x 20 - 10 (the race) - 20 (spent) = 1.6 s; a student costs 1 s (1 step), an
    # adapted combination of two layers 2 s: the first student fits, a second would need 1 + 1 + 2 = 4 s
    run, stages, rec, students = planned("1.6")
    plan, race = stages["plan"], stages["race"]
    assert plan["untested"] == ["dcmha"] and plan["race_reserved"] == pytest.approx(0.5)
    assert plan["students"] == 1 and len(singles(students)) == 1 and len(plan["not_run"]) == 3
    # the pick (L0 linear, L1 softmax) keeps a softmax layer, so linear and local (tested: within noise) would
    # race too, sharing race_budget 0.5 (3 steps each): they are left out, and dcmha races its 10 steps
    assert [c["label"] for c in race["contenders"]] == ["dcmha"] and race["steps"] == 10 and not race["dropped"]
    assert race["deferred"] == ["linear", "local(window=4)"]
    assert (run / "trials" / "race-dcmha+dcmha-s0" / "budget10.json").exists()
    assert "race_cut" not in json.dumps(rec["warnings"])
    deferred = next(w for w in rec["warnings"] if w["code"] == "race_deferred")
    assert deferred["message"].startswith("seed 0: linear, local(window=4) not raced (within noise of the teacher")
    assert "dcmha (untested by the teacher: no other evidence) raced 10 steps" in deferred["message"]
    warn = next(w for w in rec["warnings"] if w["code"] == "students_cut")
    assert "3 of 4 per-layer students not run" in warn["message"] and "dcmha" in warn["message"]
    assert "raise max_cost to 1.9" in warn["fix"]     # (20 + 10 + 4 + 2 + 0.4) / 20 = 1.82 -> 1.9


def test_a_cap_with_room_runs_every_student(planned):
    run, stages, rec, students = planned("2.0")     # (2 - 0.02) x 20 - 10 - 20 = 9.6 s: 4 students and the pair
    assert stages["plan"]["students"] == 4 and len(singles(students)) == 4 and stages["plan"]["not_run"] == []
    assert "students_cut" not in json.dumps(rec["warnings"]) and stages["race"]["steps"] == 10


def test_without_an_untested_type_every_student_runs_whatever_the_cap(planned):
    run, stages, rec, students = planned("1.1", untested=False)
    assert "plan" not in stages and len(singles(students)) == 4


def test_the_race_reuses_the_slice_and_reads_the_same_as_scoring_its_examples_at_once(planned, tiny_spec):
    # race_batches 3 x 16 examples: the first 16 (score_batches 1) come from each trial's record, the next 32
    # are scored for the race; with score_batches 3 every trial scores all 48 itself (same trainings)
    run, stages, rec, students = planned("null", extra=", race_batches: 3")
    race = stages["race"]
    record = json.loads((run / "trials" / "race-dcmha+dcmha-s0" / "budget10.json").read_text())
    assert race["eval_n"] == 48 and race["batches"] == 3 and "plan" not in stages
    assert len(record["examples"]["values"]) == 16 and len(record["wide"]["values"]) == 32
    spec = run.parent / "spec.yaml"
    spec.write_text(spec.read_text().replace("score_batches: 1", "score_batches: 3"))
    assert main(["search", str(spec), "--out", str(run.parent / "whole"), "--no-progress"]) == 0
    whole = next(st for st in json.loads((run.parent / "whole" / "evidence.json").read_text())["stages"]
                 if st["stage"] == "race")
    assert whole["eval_n"] == 48 and "wide" not in json.loads(
        (run.parent / "whole" / "trials" / "race-dcmha+dcmha-s0" / "budget10.json").read_text())
    assert whole["defender_score"] == pytest.approx(race["defender_score"], abs=1e-5)
    assert [(r["score"], r["se"]) for r in whole["races"]] == \
        [pytest.approx((r["score"], r["se"]), abs=1e-5) for r in race["races"]]


def test_a_cut_race_scores_fewer_examples_before_it_trains_fewer_steps(planned, monkeypatch):
    calls = []
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.05)    # 20 examples a second
    # one training spent when the plan sizes the students, 1.4 when the race is sized
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: (calls.append(1), self.unit * (1 if len(calls) == 1
                                                                                          else 1.4))[1])
    # plan: (2.1 - 0.02) x 20 - 20 - (10 steps + 16 x 0.05) = 10.8 s: 4 students (1 + 0.8 s each) and the pair
    # (2.8 s); race: (2.1 - 0.02) x 20 - 28 = 13.6 s: 10.8 s for its steps and slice, 2.8 s for 28 more examples
    # (0.05 s for dcmha and for the pick each): one whole batch of 16 of the 32 beyond the slice
    run, stages, rec, students = planned("2.1", extra=", race_batches: 3")
    race, cap = stages["race"], stages["budget"]
    assert [c["label"] for c in race["contenders"]] == ["dcmha"] and race["steps"] == 10 and race["extra"] == 16
    assert race["eval_n"] == 32 and cap["race_batches"] == 2 and cap["warning"]["code"] == "race_cut"
    assert "dcmha, scored on 2 of 3 held-out batches" in cap["warning"]["message"]
    assert "fewer examples separate less" in cap["warning"]["message"]


def test_an_untested_type_that_lost_only_a_shorter_race_leaves_the_confidence_weak(planned):
    run, stages, rec, students = planned("null")
    race = stages["race"]
    assert race["races"][0]["candidate"] == "dcmha" and race["races"][0]["verdict"] != "challenger wins"
    assert race["raced_short"] == ["dcmha"] and race["steps"] == 10 < race["defender_steps"]
    assert rec["confidence"] == "weak"
    assert f"dcmha untested by the teacher, raced only shorter than the pick (dcmha 10 vs {race['defender_steps']} " \
           f"steps): not ruled out" in rec["headline"]
    assert any(w["code"] == "race_short" for w in rec["warnings"])


def test_a_won_or_full_length_race_does_not_cap_the_confidence():
    from nasgraph.search.recommend_race import short_races

    assert short_races([{"stage": "race", "steps": 6, "defender_steps": 11, "raced_short": []}]) == (None, None)
    reason, warn = short_races([{"stage": "race", "steps": 90, "defender_steps": 180, "raced_short": ["gdn"]},
                                {"stage": "race", "steps": 90, "defender_steps": 165, "raced_short": ["gdn"]}])
    assert reason == "gdn untested by the teacher, raced only shorter than the pick (gdn 90 vs 180 steps; gdn 90 " \
                     "vs 165 steps): not ruled out" and warn.code == "race_short"


def test_a_race_over_the_cap_is_said_so_beside_the_cut(planned, monkeypatch):
    calls = []
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.05)
    # as above, then the search ends at 2.2 trainings: the race (10.8 s of slice and steps, 0.8 s beyond it predicted)
    # cost more than predicted; the cut's warning (fewer examples) stays, and the overrun is said beside it
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: (calls.append(1), self.unit * (1 if len(calls) == 1 else
                                                                                          1.4 if len(calls) == 2
                                                                                          else 2.2))[1])
    run, stages, rec, students = planned("2.1", extra=", race_batches: 3")
    codes = [w["code"] for w in rec["warnings"]]
    assert "race_cut" in codes and "over_max_cost" in codes
    over = next(w for w in rec["warnings"] if w["code"] == "over_max_cost")
    assert "the search cost 2.20 standalone trainings per seed, over max_cost 2.1: its race cost 0.80" in over["message"]
