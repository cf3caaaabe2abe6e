"""teacher_race's cost cap (nasgraph.search.strategies._budget): the race is sized to what is left
under max_cost, cut (fewer steps, then fewer contenders) and said so, and the accounting is recorded."""
from __future__ import annotations

import json

import pytest

import nasgraph.search.strategies._budget as budget
import nasgraph.search.strategies.teacher_race as tr
from nasgraph.cli import main
from nasgraph.search.strategies._budget import fit_race


class FakeLedger:
    """Measured rates stood in: CPU seconds per training step and per scored example, by type."""

    def __init__(self, rates: dict, scoring: float = 0.0):
        self.rates, self.scoring = rates, scoring

    def rate_of(self, label):
        return self.rates[label]

    def scoring_of(self, label):
        return self.scoring

    def start_of(self, label):
        return 0.0


def configured(labels: list[str]) -> int:      # race_fraction 0.3, race_budget 0.5 of 100 steps
    return round(min(0.3, 0.5 / len(labels)) * 100)


def test_a_race_that_fits_keeps_its_configured_steps():
    k, cap, extra, cost = fit_race([["linear", "local"]], configured, FakeLedger({"linear": 1.0, "local": 2.0}),
                                   1000.0, 10, 50, 200, "softmax")
    assert (k, cap, extra, cost) == (2, 25, 200, 75.0)


def test_a_race_over_the_cap_scores_fewer_examples_before_it_trains_fewer_steps():
    ledger = FakeLedger({"linear": 1.0, "local": 2.0}, scoring=0.01)
    # the slice (50 examples each, 1 s) and 25 steps each (75 s) fit in 80 s; each example beyond the slice costs
    # 0.03 s (both contenders and the pick): 4 s buy 133, whole batches of 10 -> 130
    assert fit_race([["linear", "local"]], configured, ledger, 80.0, 10, 50, 200, "softmax", batch=10) == \
        (2, 25, 130, pytest.approx(76 + 130 * 0.03))
    # 60 s: not every step fits, so nothing beyond the slice: 59 s / 3 s per step -> 19 steps each
    assert fit_race([["linear", "local"]], configured, ledger, 60.0, 10, 50, 200, "softmax") == (2, 19, 0, 1 + 19 * 3.0)
    # 30 s: two contenders get 9 steps (< 10): only the first (best) one races, at (30 - 0.5) / 1 -> 29 steps
    assert fit_race([["linear", "local"]], configured, ledger, 30.0, 10, 50, 200, "softmax") == (1, 29, 0, 0.5 + 29.0)
    assert fit_race([["linear", "local"]], configured, ledger, 5.0, 10, 50, 200, "softmax") == (0, None, 0, 0.0)
    assert fit_race([[]], configured, ledger, 1000.0, 10, 50, 200, "softmax") == (0, None, 0, 0.0)


@pytest.fixture
def raced(tiny_spec, tmp_path, monkeypatch):
    """A tiny teacher_race search where both other types contend, with deterministic costs: one
    training step costs 1 CPU second (so one standalone training is search.steps = 20 seconds), scoring
    is free, and the search had spent exactly one training before the race."""
    monkeypatch.setattr(tr, "contenders", lambda teacher, students, *rule: [
        {**s, "gap": teacher - s["utility"]} for s in sorted(students, key=lambda s: s["label"] != "linear")])
    monkeypatch.setattr(budget, "rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "steady_rate", lambda rec: 1.0)
    monkeypatch.setattr(budget, "per_example", lambda rec, n: 0.0)
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: self.unit)

    def search(options: str, out: str = "run"):
        spec = tiny_spec("layer", "teacher_race", ", kl_tolerance: 0, tie_margin: 0, margin: 1.0" + options)
        spec.write_text(spec.read_text().replace("seeds: [0], steps: 6,", "seeds: [0], steps: 20,"))
        run = tmp_path / out
        assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
        ev = json.loads((run / "evidence.json").read_text())
        rec = json.loads((run / "recommendation.json").read_text())
        race = next(st for st in ev["stages"] if st["stage"] == "race")
        cap = next(st for st in rec["stages"] if st["stage"] == "budget")
        return run, race, cap, rec
    return search


def test_the_race_is_cut_to_fit_under_max_cost_and_the_user_is_told(raced):
    # configured: 2 contenders x 5 steps (race_budget 0.5); left: (1.5 - 1 - 0.02 reserve) x 20 = 9.6 s -> 4 steps each
    run, race, cap, rec = raced(", max_cost: 1.5")
    assert race["steps"] == 4 and [c["label"] for c in race["contenders"]] == ["linear", "local(window=4)"]
    assert (run / "trials" / "race-linear+linear-s0" / "budget4.json").exists()
    assert cap["max_cost"] == 1.5 and cap["unit_cpu_seconds"] == 20 and cap["spent_before_race"] == 1.0
    assert cap["race_steps"] == 4 and cap["race_predicted"] == pytest.approx(0.4) and cap["spent"] == 1.0
    assert cap["warning"]["code"] == "race_cut"
    assert any(w["code"] == "race_cut" and "at 4 steps (configured 5)" in w["message"] for w in rec["warnings"])
    assert "race_cut" in json.dumps(rec) and "max_cost" in (run / "report.md").read_text()


def test_a_tighter_cap_races_only_the_most_promising_contender(raced):
    # left: (1.2 - 1 - 0.02) x 20 = 3.6 s; two contenders would get 1 step (< 3, race_min_fraction 0.15): one races
    run, race, cap, rec = raced(", max_cost: 1.2, race_min_fraction: 0.15")
    assert [c["label"] for c in race["contenders"]] == ["linear"] and race["dropped"] == ["local(window=4)"]
    assert race["steps"] == 3 and [r["candidate"] for r in race["races"]] == ["linear"]
    assert "local(window=4) not raced" in cap["warning"]["message"]


def test_no_race_fits_no_race_runs(raced):
    run, race, cap, rec = raced(", max_cost: 1.05")
    assert race["contenders"] == [] and race["verdict"] == "no race: max_cost reached" and race["races"] == []
    assert not list((run / "trials").glob("race-*")) and "seed 0: no race" in cap["warning"]["message"]


def test_a_teacher_phase_over_the_cap_is_said_so(raced, monkeypatch):
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: 1.7 * self.unit)   # over 1.5 before the race
    run, race, cap, rec = raced("")
    assert race["races"] == [] and cap["spent"] == 1.7 and cap["warning"]["code"] == "race_cut"
    monkeypatch.setattr(tr, "contenders", lambda teacher, students, *rule: [])         # no race asked: its own warning
    run, race, cap, rec = raced("", "run2")
    assert cap["warning"]["code"] == "over_max_cost" and "1.70 standalone trainings" in cap["warning"]["message"]


def test_a_race_that_costs_more_than_predicted_is_said_so_not_blamed_on_the_teacher(raced, monkeypatch):
    calls = []
    # one training spent before the race, 1.6 after it: the 10-step race (0.5 predicted) cost 0.6
    monkeypatch.setattr(budget.Ledger, "spent", lambda self: (calls.append(1), self.unit * (1 if len(calls) == 1
                                                                                          else 1.6))[1])
    run, race, cap, rec = raced(", max_cost: 1.55")
    assert race["steps"] == 5 and cap["race_predicted"] == pytest.approx(0.5) and cap["spent"] == 1.6
    message = cap["warning"]["message"]
    assert cap["warning"]["code"] == "over_max_cost" and "its race cost 0.60, predicted 0.50" in message
    assert "before any race" not in message


def test_without_a_cap_the_race_is_not_cut_and_the_cost_is_still_measured(tiny_spec, tmp_path):
    spec = tiny_spec("layer", "teacher_race", ", max_cost: null")
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    cap = next(st for st in json.loads((run / "recommendation.json").read_text())["stages"] if st["stage"] == "budget")
    assert cap["max_cost"] is None and "warning" not in cap
    assert cap["unit_cpu_seconds"] > 0 and cap["spent"] >= cap["spent_before_race"] > 0
    trial = json.loads(next((run / "trials").glob("teacher-*/budget*.json")).read_text())
    assert trial["train_steps"] == trial["steps"] and trial["cpu_seconds"] >= trial["train_cpu_seconds"] > 0


@pytest.mark.parametrize("options,key", [(", max_cost: 0.5", "max_cost"),
                                         (", race_min_fraction: 0.4", "race_min_fraction")])
def test_a_cap_that_leaves_no_room_is_a_spec_error_at_load(tiny_spec, tmp_path, capsys, options, key):
    spec = tiny_spec("layer", "teacher_race", options)
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert key in err and "Traceback" not in err and not (tmp_path / "run").exists()


def test_a_race_is_priced_at_the_steady_rate_plus_one_start_up_not_a_short_trials_mean(tmp_path):
    from types import SimpleNamespace

    from nasgraph.search.trials import steady_cpu_per_step

    # a 15-step student: step 1 takes 0.47 CPU s (start-up), then 0.08 s a step; its last checkpoint 0.1 s
    marks = [(0, 0.0), (1, 0.47)] + [(s, 0.47 + 0.08 * (s - 1)) for s in range(2, 16)]
    per_step = steady_cpu_per_step(marks)
    assert abs(per_step - 0.08) < 1e-9 and steady_cpu_per_step(marks[:2]) is None
    # a checkpoint inside the run is a cost of its steps: counted, not dropped as an outlier
    spiked = marks[:8] + [(s, c + 0.14) for s, c in marks[8:]]
    assert abs(steady_cpu_per_step(spiked) - 0.09) < 1e-9
    student = {"train_steps": 15, "train_cpu_seconds": marks[-1][1] + 0.1, "train_cpu_per_step": per_step,
               "cpu_seconds": marks[-1][1] + 0.1 + 0.7, "score_cpu_seconds": 0.64}
    assert abs(budget.start_up(student) - (0.47 - 0.08 + 0.1)) < 1e-9
    assert budget.per_example(student, 640) == pytest.approx(0.001)   # its scoring, not its build (0.06 s)
    ledger = budget.Ledger(SimpleNamespace(started=0.0, backend=None, out=tmp_path), 300)
    ledger.add("gated", student, 640)
    # 90 race steps: 0.49 s once, 7.2 s of steps; the whole student's mean rate (0.1 s) would say 9.0; scoring
    # its slice (640) and the 2560 examples after it at 1 ms, and the defender's 2560 (its slice is in its record)
    assert fit_race([["gated"]], lambda labels: 90, ledger, 1000.0, 30, 640, 2560, "gated")[3] == \
        pytest.approx(0.49 + 7.2 + 3.2 + 2.56)
    assert ledger.unit == pytest.approx(300 * student["train_cpu_seconds"] / 15)    # the unit: whole trainings
