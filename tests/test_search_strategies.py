"""The strategy registry and contract: config validation at load time, trial strategies (halving,
teacher) end to end with their evidence, the halving schedule, teacher's greedy rule, trial resume."""
from __future__ import annotations

import json

import pytest

from nasgraph.cli import main
from nasgraph.search.strategies import STRATEGIES
from nasgraph.search.strategies.halving import HalvingConfig, rung_budgets
from nasgraph.search.strategies.teacher import greedy


def _spec(tiny_spec, granularity: str, strategy: str, extra: str = "", steps: int = 16):
    """The tiny spec with a search budget a trial strategy can split into rungs / adaptations."""
    path = tiny_spec(granularity, strategy, extra)
    path.write_text(path.read_text().replace("seeds: [0], steps: 6,", f"seeds: [0], steps: {steps},"))
    return path


def _evidence(run) -> dict:
    return json.loads((run / "evidence.json").read_text())


@pytest.mark.parametrize("strategy,granularity,extra", [
    ("halving", "layer", ", refine: true"), ("teacher", "head", ""),
    ("teacher", "layer", ", objective: {flops: {weight: 1.0, target: 0.9}}"), ("teacher_race", "layer", ""),
    ("teacher_race", "head", ", objective: {flops: {weight: 0.5}}")])
def test_trial_strategy_end_to_end(tiny_spec, tmp_path, strategy, granularity, extra):
    run = tmp_path / "run"
    spec = _spec(tiny_spec, granularity, strategy, extra, {"halving": 16, "teacher_race": 24}.get(strategy, 20))
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    ev = _evidence(run)
    assert ev["strategy"] == strategy and ev["metric"] == "acc" and len(ev["picks"]) == len(ev["seeds"])
    homogeneous = {m["labels"]["L0.attention"][0] for m in ev["measured"] if m["kind"] == "homogeneous"}
    assert homogeneous == {"softmax", "linear", "local(window=4)"}       # every type ranked
    for m in ev["measured"]:
        assert len(m["scores"]) >= 1 and all(0.0 <= s <= 1.0 for s in m["scores"]) and m["steps"] > 0
    if strategy == "halving":
        assert len(ev["seeds"]) >= 2 and ev["chosen"] is not None
        assert all(len(m["scores"]) == len(ev["seeds"]) for m in ev["measured"])
        assert json.loads((run / "rungs.json").read_text())["rungs"] == [[2, 3], [4, 2]]
    elif strategy == "teacher_race":
        (stage,) = [st for st in ev["stages"] if st["stage"] == "race"]
        assert stage["teacher"] == "softmax" and stage["teacher_steps"] == 12 and (run / "race_seed0.json").exists()
        assert {c["label"] for c in stage["contenders"]} <= homogeneous - {"softmax"}
        rec = json.loads((run / "recommendation.json").read_text())
        assert rec["stages"][0]["verdict"] == stage["verdict"] and "Race (types" in (run / "report.md").read_text()
    if strategy != "halving":
        assert any("kl" in m["detail"] for m in ev["measured"] if m["kind"] != "homogeneous" or m["detail"])
    for trial in (run / "trials").iterdir():
        assert (trial / "spec.yaml").exists() and list(trial.glob("budget*.json"))
    assert (run / "derived.yaml").exists() and (run / "report.md").exists()


def test_halving_budget_schedule():
    cfg = HalvingConfig()
    assert rung_budgets(3, 1000, cfg) == [(125, 3), (250, 2)]
    assert rung_budgets(6, 1000, cfg) == [(125, 6), (250, 3), (500, 2)]
    assert rung_budgets(6, 1000, HalvingConfig(eta=3, min_fraction=0.1, max_fraction=0.9)) == [(100, 6), (300, 2)]
    assert rung_budgets(2, 800, cfg) == [(100, 2)]                       # the next rung would hold one


def test_teacher_keeps_its_type_where_the_replacement_diverges_more():
    # layer 0's cheap replacement moves the output far from the teacher's, layer 1's barely
    singles = [{"node": "L0", "index": 1, "kl": 0.40, "saving": 10.0},
               {"node": "L1", "index": 1, "kl": 0.01, "saving": 10.0},
               {"node": "L1", "index": 2, "kl": 0.05, "saving": 12.0}]
    free = greedy(singles, start_cost=100.0, cost_max=100.0, weight=0.0, target=None, tolerance=0.02)
    assert [(r["node"], r["index"]) for r in free] == [("L1", 1)]        # only the near-free one
    budget = greedy(singles, start_cost=100.0, cost_max=100.0, weight=0.0, target=0.95, tolerance=0.0)
    assert [(r["node"], r["index"]) for r in budget] == [("L1", 1)]      # one replacement meets the budget
    costly = greedy(singles, start_cost=100.0, cost_max=100.0, weight=5.0, target=None, tolerance=0.0)
    assert {r["node"] for r in costly} == {"L0", "L1"}                   # a heavy cost term takes both


def test_trial_search_resume_skips_finished_trials(tiny_spec, tmp_path, monkeypatch):
    import nasgraph.search.trials as trials

    spec = _spec(tiny_spec, "layer", "halving")
    assert main(["search", str(spec), "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    real, calls = trials.fit, []

    def counted(*args, **kwargs):
        calls.append(kwargs["desc"])
        if len(calls) == 3 and not kwargs["resume"] and interrupt:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trials, "fit", counted)
    interrupt = True
    assert main(["search", str(spec), "--out", str(tmp_path / "cut"), "--no-progress"]) == 130
    done = calls[:2]
    calls.clear()
    interrupt = False
    assert main(["search", str(spec), "--out", str(tmp_path / "cut"), "--no-progress", "--resume"]) == 0
    assert not set(done) & set(calls) and len(calls) == 10 - 2          # 3 x 2 trials, then 2 x 2 continued
    full, cut = _evidence(tmp_path / "full"), _evidence(tmp_path / "cut")
    assert [m["scores"] for m in cut["measured"]] == [m["scores"] for m in full["measured"]]
    assert cut["chosen"] == full["chosen"]


BAD_SEARCH = [
    ("{strategy: dartz}", "search.strategy", "unknown search strategy 'dartz' (did you mean 'darts'?)"),
    ("{strategy: darts, tau: [1.0, 0.5]}", "search.tau", "option 'tau' belongs to strategy gdas, not 'darts'"),
    ("{strategy: fixed, derive: topk, topk: 5}", "search.topk", "topk 5 exceeds the 3 candidates"),
    ("{strategy: halving, etta: 3}", "search.etta", "unknown option 'etta' (did you mean 'eta'?)"),
    ("{strategy: teacher, kl_tolerance: -1}", "search.kl_tolerance", "greater than or equal to 0"),
]


@pytest.mark.parametrize("search,path,message", BAD_SEARCH)
def test_strategy_config_errors_are_located(write_spec, tiny_spec, search, path, message, capsys):
    text = tiny_spec().read_text()
    head, tail = text[:text.index("search:")], text[text.index("\ntrain:") + 1:]
    spec = write_spec(head + f"search: {search}\n" + tail, "bad.yaml")
    assert main(["compile", str(spec)]) == 2
    err = capsys.readouterr().err
    assert f"bad.yaml:12:" in err and f" {path}: " in err and message in err and "Traceback" not in err


def test_every_strategy_has_a_typed_config():
    for name, cls in STRATEGIES.items():
        assert cls.Config.model_config.get("extra") == "forbid", name
