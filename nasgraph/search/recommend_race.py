"""Where a race decided the pick (or confirmed it), the contrast between its two sides is the race's.

teacher_race trains a challenger from scratch and scores it and the pick (the defender) on the same
`race_batches` held-out batches, paired (its stages: defender, races, defender_score, eval_n); the
recommendation's other contrasts read the smaller scoring slice every architecture was scored on, where
the same two can tie (the byte-level LM: +0.023 +-0.002 bits per byte on 3200 paired sequences in the
race, -0.006 +-0.005 on the 640-sequence slice). The confidence must not contradict the evidence that
made the pick, so the race's paired comparison replaces the slice's for that pair (over seeds: the mean
gap, the errors combined), and the reason names it ("decided by the race: ...").
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

from nasgraph.search.contrasts import Contrast
from nasgraph.search.verdicts import Warn
from nasgraph.textfmt import metric_delta


@dataclass
class RaceContrast(Contrast):
    """A contrast measured by teacher_race's race(s) between the pick and `other`."""

    examples_n: int = 0            # paired held-out examples behind it, over the seeds that raced the pair
    batches: int | None = None     # held-out batches behind it (all its races), when recorded
    pick_challenged: bool = False  # the pick was the challenger (it won its place in the race)


def _choice(labels: dict[str, list[str]], candidates: dict[str, list[str]]) -> dict[str, list[int]] | None:
    """A choice from per-node labels (a stage's "defender"); None when a label is not a candidate."""
    try:
        return {n: [candidates[n].index(l) for l in ls] for n, ls in labels.items()}
    except (KeyError, ValueError):
        return None


def race_contrasts(stages: list[dict], candidates: dict[str, list[str]], pick_choice: dict,
                   archs: list) -> dict[str, RaceContrast]:
    """{key of the other architecture: the race's contrast of the pick against it}, for every race
    whose two sides are the pick and that architecture (mine - other's, in metric units)."""
    by_key = {json.dumps(a.choice, sort_keys=True): a for a in archs}
    found: dict[str, list[tuple[float, float, int, int | None, bool]]] = {}
    for st in stages:
        if st.get("stage") != "race" or st.get("defender_score") is None or not st.get("races"):
            continue
        defender = _choice(st["defender"], candidates)
        for r in st["races"]:
            challenger = _choice({n: [r["candidate"]] * len(ls) for n, ls in st["defender"].items()}, candidates)
            if defender is None or challenger is None or r.get("se") is None:
                continue
            gap = r["score"] - st["defender_score"]          # challenger - defender, paired on the race's examples
            if pick_choice == challenger:
                other, margin, challenged = defender, gap, True
            elif pick_choice == defender and (st.get("steps") or 0) < (st.get("configured_steps") or 0):
                continue      # held against a challenger the cap cut short of the race's design: confirms nothing
            elif pick_choice == defender:
                other, margin, challenged = challenger, -gap, False
            else:
                continue
            found.setdefault(json.dumps(other, sort_keys=True), []).append(
                (margin, r["se"], st.get("eval_n") or 0, st.get("batches"), challenged))
    out = {}
    for k, rows in found.items():
        if k not in by_key:
            continue
        margin = sum(r[0] for r in rows) / len(rows)
        se = math.sqrt(sum(r[1] ** 2 for r in rows)) / len(rows)
        batches = [r[3] for r in rows]
        out[k] = RaceContrast(by_key[k], margin, se, True, examples_n=sum(r[2] for r in rows),
                              batches=sum(batches) if all(batches) else None,
                              pick_challenged=any(r[4] for r in rows))
    return out


def race_reason(contrasts: list, metric: str) -> str:
    """"decided by the race: +0.023 +-0.002 over X on 200 paired held-out batches (3200 examples)" for
    each race contrast among `contrasts` ("confirmed" where the pick defended and stayed decisively
    ahead, "not separated" where the race left the two within noise); "" when none."""
    parts = []
    for c in (c for c in contrasts if isinstance(c, RaceContrast)):
        verb = ("decided" if c.pick_challenged else "confirmed") if c.verdict == "worse" else "not separated"
        sign = "+" if c.margin >= 0 else "-"
        where = (f"{c.batches} paired held-out batches ({c.examples_n} examples)" if c.batches
                 else f"{c.examples_n} paired held-out examples")
        parts.append(f"{verb} by the race: {sign}{metric_delta(metric, abs(c.margin))} +-{metric_delta(metric, c.se)} "
                     f"over {c.other.name} on {where}")
    return "; ".join(parts)


def short_races(stages: list[dict]) -> tuple[str | None, Warn | None]:
    """(the reason that caps the confidence at weak, its warning) where a type the teacher could not test did
    not win a race that trained it fewer steps than the pick (a stage's "raced_short"): its race is its only
    evidence, and a type that learns better, not faster, loses a short race (the byte-level LM:
    gated_deltanet at 90 steps from scratch behind an adapted local(32) at 180, first when both train 300)."""
    rows = [(t, st["steps"], st.get("defender_steps") or st.get("teacher_steps"))
            for st in stages if st.get("stage") == "race" for t in st.get("raced_short") or []]
    if not rows:
        return None, None
    names = ", ".join(dict.fromkeys(t for t, _, _ in rows))
    detail = "; ".join(f"{t} {s} vs {d} steps" for t, s, d in rows)
    reason = f"{names} untested by the teacher, raced only shorter than the pick ({detail}): not ruled out"
    return reason, Warn("race_short", f"{reason}: the race trains a challenger fewer steps than the pick, so a "
                                      f"type that learns better, not faster, can lose it; the search has no other "
                                      f"evidence on {names}",
                        "train both standalone at the full budget (nasgraph train), or raise race_fraction to "
                        "teacher_fraction (and max_cost to fit it)")


def deferred_races(stages: list[dict]) -> list[Warn]:
    """A warning per seed whose tested contenders (a stage's "deferred") were left out of the race so that the
    untested types raced their race_fraction steps (race_budget shared would have cut them)."""
    return [Warn("race_deferred",
                 f"seed {st['seed']}: {', '.join(st['deferred'])} not raced (within noise of the teacher as students): "
                 f"left out so that {', '.join(c['label'] for c in st['contenders'])} (untested by the teacher: no "
                 f"other evidence) " + (f"raced {st['steps']} steps, not a share of race_budget" if st.get("steps")
                                        else "came first"),
                 "raise race_budget (and max_cost) to race them beside it, or train them standalone (nasgraph train)")
            for st in stages if st.get("stage") == "race" and st.get("deferred")]
