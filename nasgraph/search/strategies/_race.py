"""The rules of teacher_race's challenge: who may challenge the teacher, and when a challenger wins.

Students adapted from a teacher's weights favour the teacher's type, so their scores can rule a type
out (significantly below the teacher) but cannot rule it in. A homogeneous type whose student the
teacher does not beat at one-sided 95% (on utility: the task metric minus the cost term, the metric's
part paired on the same examples, the cost's part exact) is a contender; each is trained from
scratch and wins only if it beats the teacher at one-sided 95% on the same held-out examples
although it trained fewer steps. Early scores favour types that learn
fast early (ListOps: local leads early and ends 5 points behind); with fewer steps than the teacher,
that bias works against the challenger, so a win is conservative.
"""
from __future__ import annotations

from nasgraph.search.strategies.teacher import ONE_SIDED_95


def significant(diff: float, se: float | None) -> bool:
    """diff > 0 at one-sided 95% (without a standard error nothing is significant)."""
    return se is not None and diff - ONE_SIDED_95 * se > 0


def contenders(teacher_utility: float, students: list[dict]) -> list[dict]:
    """The homogeneous students ({label, utility, se}: se of the paired metric gap to the teacher) that
    the teacher does not beat at one-sided 95%, best utility first; each gets "gap" (teacher - it)."""
    out = [{**s, "gap": teacher_utility - s["utility"]} for s in students]
    return sorted((s for s in out if not significant(s["gap"], s["se"])), key=lambda s: -s["utility"])


def verdict(diff: float, se: float | None) -> str:
    """The challenge's outcome from (challenger utility - teacher utility, its standard error)."""
    if significant(diff, se):
        return "challenger wins"
    return "undecided" if diff > 0 else "pick holds"
