"""The rule of a from-scratch race among homogeneous candidates (race_teacher's first stage).

Every entrant of a rung was trained from scratch to the same step count at the same seed and scored
on the same held-out examples, so each comparison is paired (nasgraph.search.paired) and judged on
the objective's utility (the task metric minus the cost term, whose difference is exact). Early
scores favour the types that learn fastest early (on ListOps, local leads early and ends 5 points
behind), so the rule is asymmetric: the default (the most expressive type, the teacher the
teacher strategy would take without a race) stays in the race to its last rung and keeps the
teacher's role unless a challenger beats it there at one-sided 95%; a challenger is dropped as soon
as the rung's leader beats it at one-sided 95%.
"""
from __future__ import annotations

from nasgraph.search.paired import paired_difference

ONE_SIDED_95 = 1.645


def rung_steps(fractions: list[float], total: int) -> list[int]:
    """Training steps of each rung: a share of the search budget, at least one, increasing."""
    steps = sorted({max(1, round(f * total)) for f in fractions})
    return steps


def gap(a: dict, b: dict, utility_a: float, utility_b: float) -> tuple[float, float | None]:
    """(utility of a - utility of b, standard error or None): the metric's part paired on the same
    examples, the cost term's part exact."""
    paired = paired_difference(a.get("examples"), b.get("examples"))
    diff = utility_a - utility_b
    return diff, (paired[1] if paired is not None else None)


def significant(diff: float, se: float | None) -> bool:
    """diff > 0 at one-sided 95% (without a standard error nothing is significant)."""
    return se is not None and diff - ONE_SIDED_95 * se > 0


def judge_rung(records: dict[str, dict], utility: dict[str, float], default: str, last: bool) -> dict:
    """The verdict of one rung at one seed: {leader, rows, alive, teacher}.

    `records`: label -> trial record (score, examples); `utility`: label -> score minus the cost term.
    rows: one per entrant {candidate, score, utility, behind, se, verdict} with `behind` the leader's
    utility minus its own; verdict "leader", "dropped" (the leader beats it at one-sided 95%), "kept"
    (within noise of the leader) or "kept: default" (the default, behind but kept to the last rung).
    alive: the entrants of the next rung (empty after the last rung). teacher: at the last rung (or when
    one entrant is left), the leader if it beats the default at one-sided 95%, else the default."""
    leader = max(records, key=lambda l: (utility[l], l == default))
    rows, alive = [], []
    for label, rec in records.items():
        diff, se = gap(records[leader], rec, utility[leader], utility[label])
        if label == leader:
            verdict = "leader"
        elif significant(diff, se):
            verdict = "kept: default" if label == default and not last else "dropped"
        else:
            verdict = "kept"
        rows.append({"candidate": label, "score": rec["score"], "utility": utility[label],
                     "behind": diff if label != leader else 0.0, "se": se if label != leader else None,
                     "verdict": verdict})
        if verdict != "dropped":
            alive.append(label)
    done = last or len(alive) == 1
    teacher = None
    if done:
        if leader == default or default not in records:
            teacher = leader
        else:
            diff, se = gap(records[leader], records[default], utility[leader], utility[default])
            teacher = leader if significant(diff, se) else default
    return {"leader": leader, "rows": rows, "alive": [] if done else alive, "teacher": teacher}
