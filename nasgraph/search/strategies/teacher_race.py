"""Teacher, then a from-scratch race against the pick where the teacher's students are no evidence.

The teacher strategy's blind spot: its students start from the teacher's weights, so a type that beats
the teacher when trained from scratch (text_long: local 69 vs softmax 64) can score below it as a
student, and the pick keeps the teacher's type. Here the teacher phase runs as in `teacher` (with
`teacher_fraction` 0.5 to leave budget for the race). Contenders (`_race.contenders`): every type whose
homogeneous student inherits less than `inherit_min` (default all) of its parameters from the teacher
(its new parameters start untrained: its score is no evidence; gated_deltanet from a softmax teacher
inherits 92.5%), whatever the pick; and, when the pick keeps the teacher's type in some layer, every
other homogeneous type (costlier ones included) that the teacher does not beat at one-sided 95% on
utility (the student ranking among contenders is not trusted: it raced linear before local on
text_long). Each contender trains from scratch at the seed for `race_fraction` of the budget (an
untested type: `teacher_fraction`, as long as the teacher; less when several must share `race_budget`;
tested contenders do not share it down for an untested one: `race_deferred`), and it and the pick are
scored on the same `race_batches` batches of the held-out slice (paired, more examples than a student's
score). A contender replaces the pick only if it beats it at one-sided 95% on utility (metric minus the
cost term) although it trained fewer steps (`race_fraction` <= `teacher_fraction`): early scores favour
types that learn fast early (ListOps: local leads early, ends 5 points behind), and fewer steps turn
that bias against the challenger. Several winners: the largest gain. A contender ahead but not
significantly is a `race_undecided` warning; an untested type that does not win its (shorter) race is
not ruled out (`race_short`: the confidence is at most weak). Where a type is untested, the per-layer
students run only while they fit beside its race under max_cost (`_plan`). Cost: 0.5 (teacher) + 0.05
per student [+ 0.1 (a combined pick)], plus at most `race_budget` when a race runs, and never over
`max_cost` standalone trainings per seed: a measured CPU ledger (`_budget`) sizes the race to what is
left (a cut is a `race_cut` warning, naming untested types left unraced or raced short and the max_cost
that races them in full; the `budget` stage records the accounting). Each seed's race is in
race_seed<N>.json and the evidence's `stages` (recommendation.json, the terminal, report.md); where the
pick is one side of a race, the recommendation's contrast between the two sides is the race's
(nasgraph.search.recommend_race).
"""
from __future__ import annotations

import functools
import time

from pydantic import Field

from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence
from nasgraph.search.strategies._budget import Ledger, RaceBudget
from nasgraph.search.strategies._plan import StudentPlan
from nasgraph.search.strategies._race import RaceJudge, contenders, share, untested, wide_scores
from nasgraph.search.strategies._supernet import merge_measured
from nasgraph.search.strategies.registry import register
from nasgraph.search.strategies.teacher import Teacher, TeacherConfig
from nasgraph.search.trials import TrialRequest, inheritance, trial_name
from nasgraph.training.rundir import RunDir


class TeacherRaceConfig(TeacherConfig):
    teacher_fraction: float = Field(0.5, gt=0, le=1)   # the teacher's training, a share of search.steps
    race_fraction: float = Field(0.3, gt=0, le=1)      # the challenger's training from scratch (untested: teacher's)
    race_budget: float = Field(0.5, gt=0, le=1)        # all challengers of a seed together, a share of search.steps
    race_batches: int = Field(200, gt=0)               # held-out batches both are scored on (paired)
    # the whole search per seed, in standalone trainings (measured CPU time; None: no cap): the race is
    # cut to fit, and a race shorter than race_min_fraction of search.steps is not run
    max_cost: float | None = Field(1.5, gt=0)
    race_min_fraction: float = Field(0.1, gt=0, le=1)
    # a homogeneous student is evidence against its type only when it inherits at least this share of its
    # parameters from the teacher (1.0: all; benchmarks/search_inheritance.py); other types race whatever the pick
    inherit_min: float = Field(1.0, gt=0, le=1)


@register("teacher_race")
class TeacherRace(RaceJudge, RaceBudget, StudentPlan, Teacher):
    Config = TeacherRaceConfig

    @classmethod
    def check(cls, config, search, choice_sizes: list[int]) -> None:
        if config.race_fraction > config.teacher_fraction:
            raise ConfigError(f"race_fraction {config.race_fraction} exceeds teacher_fraction "
                              f"{config.teacher_fraction}: the challenger must train no longer than the teacher",
                              key="race_fraction")
        if config.race_min_fraction > config.race_fraction:
            raise ConfigError(f"race_min_fraction {config.race_min_fraction} exceeds race_fraction "
                              f"{config.race_fraction}: no race could be run", key="race_min_fraction")
        floor = config.teacher_fraction + config.adapt_fraction
        if config.max_cost is not None and config.max_cost <= floor:
            raise ConfigError(f"max_cost {config.max_cost} leaves nothing for the students: the teacher and one "
                              f"student alone cost {floor:g} standalone trainings (teacher_fraction + "
                              f"adapt_fraction); raise max_cost above {floor:g} or lower those", key="max_cost")

    def run(self, ctx) -> Evidence:
        t0, seeds, label = time.perf_counter(), list(self.search.seeds), self.teacher_label(ctx)
        ledger = Ledger(ctx, self.total_steps)
        base, self.plans = ctx.homogeneous(label), []
        others = [o for o in ctx.homogeneous_labels() if o != label]     # untested ones are known before training
        self.inherits = dict(zip(others, inheritance(ctx, base, [ctx.homogeneous(o) for o in others])))
        teachers = ctx.run_trials([TrialRequest(base, s, self.teach_steps, trial_name(ctx, base, s, "teacher-"))
                                   for s in seeds], f"teacher {label}")
        per_seed = [self.search_seed(ctx, s, rec) for s, rec in zip(seeds, teachers)]
        stages = self.race(ctx, seeds, label, teachers, per_seed, ledger)
        picks = [stage["pick_choice"] or pick for stage, (pick, _) in zip(stages, per_seed)]
        weight, _ = self.cost_term()
        return ctx.evidence(self.name, seeds=seeds, picks=picks,
                            measured=merge_measured(ctx, [m for _, m in per_seed], self.total_steps),
                            wall_seconds=time.perf_counter() - t0,
                            stages=self.plans + [{k: v for k, v in st.items() if k != "pick_choice"} for st in stages]
                            + [self.account(ledger, len(seeds))],
                            notes=[f"teacher {label} trained {self.teach_steps} steps; students adapted "
                                   f"{self.adapt_steps} steps from its weights (not full trainings), scored on the "
                                   f"teacher's held-out examples; KL tolerance {self.config.kl_tolerance}, tie margin "
                                   f"{self.config.tie_margin}, cost weight {weight}; where the pick kept the teacher's type, "
                                   f"every type its students could not rule out raced it from scratch, and every type "
                                   f"whose student inherits less than {self.config.inherit_min:.0%} of its weights from "
                                   f"the teacher (no evidence) raced whatever the pick (stages)"])

    def race_steps(self, labels: list[str]) -> int:
        """Steps of each of these challengers: race_fraction, or teacher_fraction where one is untested (its race
        is its only evidence: as long as the teacher trained, not shorter), or less so that all fit in race_budget."""
        blind = any(self.inherits.get(l, 1.0) < self.config.inherit_min for l in labels)
        frac = self.config.teacher_fraction if blind else self.config.race_fraction
        return max(1, round(min(frac, self.config.race_budget / max(1, len(labels))) * self.total_steps))

    def race(self, ctx, seeds, label, teachers, per_seed, ledger: Ledger) -> list[dict]:
        """One stage record per seed; a winning (or untested) challenger's from-scratch record replaces its
        student's."""
        base, cost, inherit_min = ctx.homogeneous(label), ctx.cost.of_choice, self.config.inherit_min
        self.budget = {"stage": "budget", "max_cost": self.config.max_cost}
        inherits = self.inherits
        stages, requests = [], []
        for seed, rec, (pick, measured) in zip(seeds, teachers, per_seed):
            students = []
            for m in (m for m in measured if m["kind"] == "homogeneous" and m["choice"] != base):
                other = ctx.label_choice(m["choice"])[next(iter(m["choice"]))][0]
                students.append({"label": other, "utility": self.utility(m["score"], cost(m["choice"])),
                                 "se": m.get("drop_se"), "inherits": inherits[other]})
                if untested(students[-1], inherit_min) and m["choice"] != pick:   # the recommendation shows it so
                    m["source"] = (f"adapted from the teacher, inherits {share(inherits[other])} of its weights: "
                                   f"not evidence")
            keeps = label in {l for ls in ctx.label_choice(pick).values() for l in ls}
            found = [c for c in contenders(self.utility(rec["score"], cost(base)), students, inherit_min, keeps)
                     if ctx.homogeneous(c["label"]) != pick]
            # an untested type's race is its only evidence: the tested contenders (their students measured them)
            # do not share race_budget with it where sharing would cut it below race_fraction
            blind = [c for c in found if untested(c, inherit_min)]
            shared = self.race_steps([c["label"] for c in found]) < self.race_steps([c["label"] for c in blind])
            deferred = [c["label"] for c in found if blind and shared and not untested(c, inherit_min)]
            found = [c for c in found if c["label"] not in deferred]
            stage = {"stage": "race", "seed": seed, "teacher": label, "teacher_steps": self.teach_steps,
                     "defender": ctx.label_choice(pick), "contenders": found, "races": [], "pick": None,
                     "steps": self.race_steps([c["label"] for c in found]) if found else None, "pick_choice": None,
                     "inherits": inherits, "deferred": deferred,
                     "verdict": "no contender" if keeps else "the pick keeps no layer of the teacher's type"}
            stages.append(stage)
        self.fit_budget(ctx, ledger, seeds, label, teachers, stages)
        for stage in stages:
            seed = stage["seed"]
            for c in stage["contenders"]:
                choice = ctx.homogeneous(c["label"])
                extra = stage.get("extra")
                requests.append(TrialRequest(choice, seed, stage["steps"], trial_name(ctx, choice, seed, "race-"),
                                             measure=functools.partial(wide_scores, extra=extra) if extra else None))
        records = iter(ctx.run_trials(requests, "race: contenders from scratch") if requests else [])
        for stage, rec, (pick, measured) in zip(stages, teachers, per_seed):
            if stage["contenders"]:
                self.judge(ctx, stage, self.trial_of(ctx, pick, rec), [next(records) for _ in stage["contenders"]],
                           measured)
            stage["pick"] = stage["pick"] or ctx.label_choice(pick)
            RunDir(ctx.out, resume=True).write_json(f"race_seed{stage['seed']}.json",
                                                    {k: v for k, v in stage.items() if k != "pick_choice"})
        return stages

    @staticmethod
    def trial_of(ctx, pick: dict, teacher: dict) -> tuple[str, dict]:
        """(trial name, choice) of the teacher phase's pick: the teacher, an adapted combination or a student."""
        if pick == teacher["choice"]:
            return teacher["name"], pick
        for prefix in ("pick-", "student-"):
            name = trial_name(ctx, pick, teacher["seed"], prefix)
            if list((ctx.out / "trials" / name).glob("budget*.json")):
                return name, pick
        raise RuntimeError(f"teacher_race: no trial of the pick {ctx.label_choice(pick)} at seed {teacher['seed']}")
