"""Race, then teacher: choose the teacher by a short from-scratch race, then select layers as `teacher`.

The teacher strategy's blind spot: its students start from the teacher's weights, so a type that
beats the teacher when trained from scratch (text_long: local 69 vs softmax 64) is ranked below it,
and a type costlier than the default teacher (gated_deltanet on an LM) is never tried. Here every
homogeneous candidate, costlier ones included, first trains from scratch at each search seed for
`race_fractions` of the budget (successive-halving rungs, all entrants of a rung at the same step
count, scored on the same held-out examples: paired). The rule (`_race.judge_rung`): a rung's leader
by utility (task metric minus the cost term) drops every entrant it beats at one-sided 95%; the
default teacher (`teacher`: softmax, else the costliest type) stays to the last rung and keeps its
role unless a challenger beats it there at one-sided 95%, because early scores favour types that
learn fast early (ListOps: local leads early, ends 5 points behind). The race winner's trial then
continues to `teacher_fraction` of the budget (its race steps count: nothing is retrained) and the
teacher's per-layer student phase runs from it unchanged (cheaper types only; the others as
homogeneous students). Cost with 3 candidates: 3 x 0.1 + survivors x 0.1 + 0.3 (teacher) + 0.3
(students) + 0.1 (a combined pick) ~ 1.1-1.3 trainings. The race's rows, per seed and rung, go to
race_seed<N>.json and the evidence's `stages` (recommendation.json shows them; a challenger that led
the default without beating it is a warning).
"""
from __future__ import annotations

import time

from pydantic import Field

from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence
from nasgraph.search.strategies._race import judge_rung, rung_steps
from nasgraph.search.strategies._supernet import merge_measured
from nasgraph.search.strategies.registry import register
from nasgraph.search.strategies.teacher import Teacher, TeacherConfig
from nasgraph.search.trials import TrialRequest, trial_name
from nasgraph.textfmt import metric_delta
from nasgraph.training.rundir import RunDir


class RaceTeacherConfig(TeacherConfig):
    race_fractions: list[float] = Field([0.1, 0.2], min_length=1)   # the race's rungs, shares of search.steps
    teacher_fraction: float = Field(0.5, gt=0, le=1)   # the teacher's whole training, its race steps included


@register("race_teacher")
class RaceTeacher(Teacher):
    Config = RaceTeacherConfig

    @classmethod
    def check(cls, config, search, choice_sizes: list[int]) -> None:
        bad = [f for f in config.race_fractions if not 0 < f < config.teacher_fraction]
        if bad:
            raise ConfigError(f"race_fractions {bad} must lie between 0 and teacher_fraction "
                              f"{config.teacher_fraction} (the winner continues as the teacher)", key="race_fractions")

    def run(self, ctx) -> Evidence:
        t0, seeds, default = time.perf_counter(), list(self.search.seeds), self.teacher_label(ctx)
        labels = ctx.homogeneous_labels()
        if len(labels) < 2:
            raise ConfigError("race_teacher needs at least two candidates offered at every choice point; use "
                              "teacher, darts or gdas for this space", key="strategy")
        winners, stages = self.race(ctx, seeds, labels, default)
        continued = ctx.run_trials([TrialRequest(ctx.homogeneous(w), s, self.teach_steps, name)
                                    for s, (w, name) in zip(seeds, winners)], "race winner -> teacher")
        per_seed = [self.search_seed(ctx, s, rec, w) for s, (w, _), rec in zip(seeds, winners, continued)]
        weight, _ = self.cost_term()
        chosen = ", ".join(f"seed {s}: {w}" for s, (w, _) in zip(seeds, winners))
        return ctx.evidence(self.name, seeds=seeds, picks=[p for p, _ in per_seed],
                            measured=merge_measured(ctx, [m for _, m in per_seed], self.total_steps),
                            wall_seconds=time.perf_counter() - t0, stages=stages,
                            notes=[f"race from scratch at {rung_steps(self.config.race_fractions, self.total_steps)} "
                                   f"steps among {', '.join(labels)} (default teacher {default}); teachers {chosen}, "
                                   f"continued to {self.teach_steps} steps; students adapted {self.adapt_steps} steps "
                                   f"from its weights (not full trainings), scored on the teacher's held-out examples; "
                                   f"KL tolerance {self.config.kl_tolerance}, tie margin {self.config.tie_margin}, "
                                   f"cost weight {weight}"])

    def race(self, ctx, seeds: list[int], labels: list[str], default: str) -> tuple[list[tuple[str, str]], list[dict]]:
        """[(teacher label, its trial name)] per seed, and the race's record per seed (evidence stages)."""
        alive = {s: list(labels) for s in seeds}
        stages = {s: {"stage": "race", "seed": s, "default": default, "metric": ctx.task.score_name, "rungs": []}
                  for s in seeds}
        winners: dict[int, str] = {}
        steps = rung_steps(self.config.race_fractions, self.total_steps)
        for k, budget in enumerate(steps):
            todo = [(s, l) for s in seeds if s not in winners for l in alive[s]]
            requests = [TrialRequest(ctx.homogeneous(l), s, budget, trial_name(ctx, ctx.homogeneous(l), s, "race-"))
                        for s, l in todo]
            records = dict(zip(todo, ctx.run_trials(requests, f"race rung {k} ({budget} steps)")))
            for s in {s for s, _ in todo}:
                entrants = {l: records[(s, l)] for l in alive[s]}
                utility = {l: self.utility(r["score"], ctx.cost.of_choice(ctx.homogeneous(l))) for l, r in entrants.items()}
                verdict = judge_rung(entrants, utility, default, last=k == len(steps) - 1)
                stages[s]["rungs"].append({"steps": budget, "leader": verdict["leader"], "rows": verdict["rows"]})
                alive[s] = verdict["alive"]
                if verdict["teacher"] is not None:
                    winners[s] = verdict["teacher"]
        out = []
        for s in seeds:
            stage = stages[s]
            stage["teacher"] = winners[s]
            last = stage["rungs"][-1]
            lead = next(r for r in last["rows"] if r["candidate"] == last["leader"])
            behind = next(r for r in last["rows"] if r["candidate"] == default)
            if winners[s] == default and last["leader"] != default:
                gap = f"{metric_delta(ctx.task.score_name, behind['behind'])}" + \
                      (f" +-{metric_delta(ctx.task.score_name, behind['se'])}" if behind["se"] else "")
                stage["warning"] = {
                    "code": "race_undecided",
                    "message": f"seed {s}: {lead['candidate']} led the default teacher {default} by {gap} after "
                               f"{last['steps']} steps from scratch, not significantly; the teacher stayed {default}, "
                               f"and students adapted from its weights favour it",
                    "fix": "raise search.steps or race_fractions so the race separates them, or train both "
                           "standalone (nasgraph train)"}
            RunDir(ctx.out, resume=True).write_json(f"race_seed{s}.json", stage)
            out.append((winners[s], trial_name(ctx, ctx.homogeneous(winners[s]), s, "race-")))
        return out, [stages[s] for s in seeds]
