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
    assert verdict(-0.02, 0.01) == "teacher holds"
    assert verdict(0.5, None) == "undecided" and not significant(0.5, None)
