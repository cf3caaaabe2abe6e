"""The rules of teacher_race's challenge: who may challenge the pick, and when a challenger wins.

Students adapted from a teacher's weights favour the teacher's type, so their scores can rule a type
out (significantly below the teacher) but cannot rule it in; and only a student that starts wholly
from the teacher is an adaptation of it. A student with parameters the teacher lacks (gated_deltanet's
decay, gate and beta projections; aft_conv's filters) starts those untrained, so its score measures a
barely started training, not the type: such a type is "untested by the teacher" (`inherits` below
`inherit_min`, default 1.0: every parameter). Contenders: every untested type, whatever the pick; and,
where the pick keeps the teacher's type, every type whose (wholly inherited) student the teacher does
not beat at one-sided 95% (on utility: the task metric minus the cost term, the metric's part paired on
the same examples, the cost's part exact). Each is trained from scratch and wins only if it beats the
pick at one-sided 95% on the same held-out examples although it trained fewer steps. Early scores
favour types that learn fast early (ListOps: local leads early and ends 5 points behind); with fewer
steps than the teacher, that bias works against the challenger, so a win is conservative.
"""
from __future__ import annotations

import json

from nasgraph.search.paired import example_scores, fingerprint, paired_difference, ratio_mean_se
from nasgraph.search.strategies.teacher import ONE_SIDED_95
from nasgraph.search.trials import load_model
from nasgraph.textfmt import metric_delta


def significant(diff: float, se: float | None) -> bool:
    """diff > 0 at one-sided 95% (without a standard error nothing is significant)."""
    return se is not None and diff - ONE_SIDED_95 * se > 0


def share(fraction: float) -> str:
    """A share of weights as a percentage that reads 100% only when it is all of them."""
    return f"{min(round(100 * fraction, 1), 99.9) if fraction < 1 else 100:g}%"


def untested(student: dict, inherit_min: float) -> bool:
    """Whether a student ({inherits}: share of its parameters from the teacher) is no evidence on its type."""
    return student.get("inherits", 1.0) < inherit_min


def contenders(teacher_utility: float, students: list[dict], inherit_min: float = 1.0,
               keeps_teacher: bool = True) -> list[dict]:
    """The homogeneous students ({label, utility, se[, inherits]}: se of the paired metric gap to the
    teacher) that race: the untested ones (first, whatever the pick), then, if the pick keeps the
    teacher's type, those the teacher does not beat at one-sided 95%, best utility first; each gets
    "gap" (teacher - it) and "why"."""
    out = [{**s, "gap": teacher_utility - s["utility"]} for s in students]
    blind = [{**s, "why": f"student inherits {share(s['inherits'])} of its weights, not evidence"}
             for s in out if untested(s, inherit_min)]
    close = [{**s, "why": "student within noise of the teacher"} for s in out if not untested(s, inherit_min)
             and keeps_teacher and not significant(s["gap"], s["se"])]
    return sorted(blind, key=lambda s: -s["utility"]) + sorted(close, key=lambda s: -s["utility"])


def verdict(diff: float, se: float | None) -> str:
    """The challenge's outcome from (challenger utility - teacher utility, its standard error)."""
    if significant(diff, se):
        return "challenger wins"
    return "undecided" if diff > 0 else "pick holds"


def wide_scores(ctx, model, splits, extra: int) -> dict:
    """Per-example scores on the `extra` held-out examples that follow the scoring slice (a trial's
    `measure`): the race's examples are the slice, which every trial has scored, then these."""
    arch, n = splits["arch"], len(ctx.score_split(splits))
    s = example_scores(model, arch.subset(list(range(n, min(len(arch), n + extra)))), ctx.train.batch_size, ctx.task)
    return {"wide": {k: s[k] for k in ("key", "values", "counts")}}


def race_examples(splits, slice_: dict, wide: dict | None) -> dict:
    """One examples record of the race's held-out examples from a trial's slice scores (its "examples") and
    its scores after the slice (`wide_scores`, None: the race reads the slice alone), with its score and n."""
    parts = [slice_] + ([wide] if wide else [])
    values = [v for p in parts for v in p["values"]]
    counts = None if all(p.get("counts") is None for p in parts) else \
        [c for p in parts for c in (p.get("counts") or [1] * len(p["values"]))]
    return {"key": fingerprint(splits["arch"].subset(list(range(len(values))))), "values": values, "counts": counts,
            "score": ratio_mean_se(values, counts)[0], "n": len(values)}


def trial_record(folder) -> dict:
    """The record of a finished trial (its largest budget)."""
    return json.loads(max(folder.glob("budget*.json"), key=lambda p: int(p.stem[len("budget"):])).read_text())


class RaceJudge:
    """teacher_race's judging of one seed's race (a mixin of the strategy: config, utility, teach_steps)."""

    def judge(self, ctx, stage: dict, defender: tuple[str, dict], challengers: list[dict], measured: list[dict]) -> None:
        """Score the pick (the defender) on the challengers' examples, decide, and record it in `stage`
        and `measured` (a winner's, or an untested type's, from-scratch record replaces its student's)."""
        seed, metric, steps, splits = stage["seed"], ctx.task.score_name, stage["steps"], ctx.splits(stage["seed"])
        folder = ctx.out / "trials" / defender[0]       # its slice scores are in its record: only the rest is scored
        wide = wide_scores(ctx, load_model(folder), splits, stage["extra"])["wide"] if stage.get("extra") else None
        mine = race_examples(splits, trial_record(folder)["examples"], wide)
        defender_utility = self.utility(mine["score"], ctx.cost.of_choice(defender[1]))
        for c, rec in zip(stage["contenders"], challengers):
            theirs = race_examples(splits, rec["examples"], rec.get("wide"))
            diff = self.utility(theirs["score"], ctx.cost.of_choice(rec["choice"])) - defender_utility
            paired = paired_difference(theirs, mine)
            se = paired[1] if paired else None
            stage["races"].append({"candidate": c["label"], "score": theirs["score"], "diff": diff, "se": se,
                                   "verdict": verdict(diff, se)})
        stage.update(eval_n=mine["n"], batches=-(-mine["n"] // ctx.train.batch_size), defender_score=mine["score"])
        # an untested type that did not win a race shorter than the pick's training: not ruled out (recommend_race)
        stage["defender_steps"] = next((m["steps"] for m in measured if m["choice"] == defender[1]), self.teach_steps)
        stage["raced_short"] = [c["label"] for c, r in zip(stage["contenders"], stage["races"])
                                if untested(c, self.config.inherit_min) and r["verdict"] != "challenger wins"
                                and steps < stage["defender_steps"]]
        best = max(zip(stage["races"], challengers), key=lambda x: x[0]["diff"])
        stage["verdict"] = best[0]["verdict"]
        winners = [(r, rec) for r, rec in zip(stage["races"], challengers) if r["verdict"] == "challenger wins"]
        replaced = [rec for c, rec in zip(stage["contenders"], challengers) if untested(c, self.config.inherit_min)]
        if winners:
            _, rec = max(winners, key=lambda x: x[0]["diff"])
            stage["pick"], stage["pick_choice"] = ctx.label_choice(rec["choice"]), rec["choice"]
            replaced.append(rec)
        for rec in replaced:
            for m in measured:
                if m["choice"] == rec["choice"]:      # its from-scratch record replaces the adapted student's
                    m.update(score=rec["score"], examples=rec["examples"], steps=steps,
                             source="trial (race, from scratch)", kl=None, kl_se=None, drop=None, drop_se=None)
        if not winners and stage["verdict"] == "undecided":
            r = best[0]
            gap = metric_delta(metric, r["diff"]) + (f" +-{metric_delta(metric, r['se'])}" if r["se"] else "")
            stage["warning"] = {
                "code": "race_undecided",
                "message": f"seed {seed}: {r['candidate']} trained from scratch for {steps} steps led the pick "
                           f"(adapted from the teacher {stage['teacher']}, {self.teach_steps} steps) by {gap}, not "
                           f"significantly; the pick stayed, and the teacher's students favour its type",
                "fix": "raise search.steps or race_fraction, or train both standalone (nasgraph train)"}
