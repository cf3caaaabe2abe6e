"""teacher_race's rules (nasgraph.search.strategies._race): students rule types out, never in; a
challenger from scratch wins only when it beats the teacher at one-sided 95%."""
from __future__ import annotations

from nasgraph.search.strategies._race import contenders, significant, verdict


def test_students_the_teacher_beats_are_ruled_out_the_others_contend_best_first():
    students = [{"label": "linear", "utility": 0.60, "se": 0.01},   # 4 pts below, 4 se: ruled out
                {"label": "local", "utility": 0.63, "se": 0.018},   # 1 pt below, within noise
                {"label": "gated", "utility": 0.65, "se": 0.02}]    # above the teacher (a costlier type)
    found = contenders(0.64, students)
    assert [c["label"] for c in found] == ["gated", "local"]
    assert abs(found[1]["gap"] - 0.01) < 1e-12


def test_without_a_standard_error_a_student_is_not_ruled_out():
    assert [c["label"] for c in contenders(0.9, [{"label": "x", "utility": 0.1, "se": None}])] == ["x"]


def test_a_challenger_wins_only_beyond_noise():
    assert verdict(0.03, 0.01) == "challenger wins"
    assert verdict(0.01, 0.01) == "undecided"              # ahead, 1 se
    assert verdict(-0.02, 0.01) == "pick holds"
    assert verdict(0.5, None) == "undecided" and not significant(0.5, None)


def test_a_winning_challenger_becomes_the_pick_with_its_from_scratch_score(tiny_spec, tmp_path, monkeypatch):
    import json

    import nasgraph.search.strategies._race as race
    import nasgraph.search.strategies.teacher_race as tr
    from nasgraph.cli import main

    # force the race: every homogeneous student contends, and the challenger wins
    monkeypatch.setattr(tr, "contenders", lambda teacher, students, *rule: [
        {**s, "gap": teacher - s["utility"]} for s in sorted(students, key=lambda s: s["label"] != "linear")])
    monkeypatch.setattr(race, "verdict", lambda diff, se: "challenger wins")   # both win: the larger gain is the pick
    spec = tiny_spec("layer", "teacher_race", ", kl_tolerance: 0, tie_margin: 0, margin: 1.0, max_cost: null")  # stays the teacher
    spec.write_text(spec.read_text().replace("seeds: [0], steps: 6,", "seeds: [0], steps: 20,"))
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    ev = json.loads((run / "evidence.json").read_text())
    (stage,) = [st for st in ev["stages"] if st["stage"] == "race"]
    assert [r["candidate"] for r in stage["races"]] == ["linear", "local(window=4)"] and stage["eval_n"] > 0
    assert stage["steps"] == 5                                   # race_budget 0.5 shared by two contenders
    assert (run / "trials" / "race-linear+linear-s0" / "budget5.json").exists()
    won = max(stage["races"], key=lambda r: r["diff"])["candidate"]
    assert {n: ls[0] for n, ls in stage["pick"].items()} == {"L0.attention": won, "L1.attention": won}
    raced = next(m for m in ev["measured"] if m["kind"] == "homogeneous" and m["labels"]["L0.attention"] == [won])
    assert raced["steps"] == 5 and "race" in raced["detail"]["source"]
    assert json.loads((run / "search.json").read_text())["labels"]["L0.attention"] == [won]


def test_the_race_is_shown_to_the_user():
    from nasgraph.report import race_lines

    stage = {"stage": "race", "seed": 2, "teacher": "softmax", "teacher_steps": 3000, "steps": 1500, "eval_n": 3200,
             "contenders": [{"label": "local", "utility": 0.64, "se": 0.017, "gap": -0.011}],
             "races": [{"candidate": "local", "score": 0.652, "diff": 0.024, "se": 0.009, "verdict": "challenger wins"}],
             "defender_score": 0.628, "verdict": "challenger wins"}
    text = "\n".join(race_lines({"metric": "acc", "stages": [stage]}, markdown=False))
    assert "local +1.1 pts +-1.7 pts" in text and "65.2% vs 62.8%: +2.4 pts +-0.9 pts (challenger wins)" in text
    assert "(1500 vs 3000 steps, 3200 examples)" in text
    assert race_lines({"metric": "acc", "stages": []}) == []
