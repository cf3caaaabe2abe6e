"""Teacher, then a from-scratch race against the teacher where its students cannot rule a type out.

The teacher strategy's blind spot: its students start from the teacher's weights, so a type that
beats the teacher when trained from scratch (text_long: local 69 vs softmax 64) can score below it
as a student, and the pick keeps the teacher's type. Here the teacher phase runs as in `teacher` (with
`teacher_fraction` 0.5 to leave budget for the race). When its pick keeps the teacher's type in some
layer (the teacher itself, or a mix), every other homogeneous type (costlier ones included: each is a homogeneous student) that the teacher does
not beat at one-sided 95% on utility is a contender (`_race.contenders`; the student ranking among
contenders is not trusted: it raced linear before local on text_long). Each contender trains from
scratch at the seed for `race_fraction` of the budget (less when several must share `race_budget`),
and it and the teacher are scored on the same `race_batches` batches of the held-out slice (paired,
more examples than a student's score). A contender replaces the pick only if it beats the pick
(the teacher, or its adapted mix) at one-sided 95% on utility (metric minus the cost term) although it trained
fewer steps (`race_fraction` <= `teacher_fraction`): early scores favour types that learn fast early
(ListOps: local leads early, ends 5 points behind), and fewer steps turn that bias against the
challenger. Several winners: the largest gain. A contender ahead but not significantly is a
`race_undecided` warning. Cost: 0.5 (teacher) + 0.05 per student [+ 0.1 (a combined pick)], plus at
most `race_budget` when a race runs, and never over `max_cost` standalone trainings per seed: a
measured CPU ledger (`_budget`) sizes the race to what is left (a cut is a `race_cut` warning and
the `budget` stage records the accounting). Each seed's race is in
race_seed<N>.json and the evidence's `stages` (recommendation.json, the terminal, report.md).
"""
from __future__ import annotations

import functools
import time

from pydantic import Field

from nasgraph import distributed
from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence
from nasgraph.search.paired import example_scores, paired_difference
from nasgraph.search.strategies._budget import Ledger, fit_race
from nasgraph.search.strategies._race import contenders, verdict
from nasgraph.search.strategies._supernet import merge_measured
from nasgraph.search.strategies.registry import register
from nasgraph.search.strategies.teacher import Teacher, TeacherConfig
from nasgraph.search.trials import TrialRequest, finished, load_model, trial_name
from nasgraph.textfmt import metric_delta
from nasgraph.training.rundir import RunDir


class TeacherRaceConfig(TeacherConfig):
    teacher_fraction: float = Field(0.5, gt=0, le=1)   # the teacher's training, a share of search.steps
    race_fraction: float = Field(0.3, gt=0, le=1)      # the challenger's training from scratch
    race_budget: float = Field(0.5, gt=0, le=1)        # all challengers of a seed together, a share of search.steps
    race_batches: int = Field(200, gt=0)               # held-out batches both are scored on (paired)
    # the whole search per seed, in standalone trainings (measured CPU time; None: no cap): the race is
    # cut to fit, and a race shorter than race_min_fraction of search.steps is not run
    max_cost: float | None = Field(1.5, gt=0)
    race_min_fraction: float = Field(0.1, gt=0, le=1)


# standalone trainings kept for what the search does after the race (judging is predicted with it;
# writing the evidence, recommendation and plots is not)
RESERVE = 0.02


def wide_scores(ctx, model, splits, batches: int) -> dict:
    """Per-example scores on the first `batches` batches of the held-out slice (a trial's `measure`)."""
    arch = splits["arch"]
    part = arch.subset(list(range(min(len(arch), batches * ctx.train.batch_size))))
    s = example_scores(model, part, ctx.train.batch_size, ctx.task)
    return {"wide": {k: s[k] for k in ("key", "values", "counts")}, "wide_score": s["score"], "wide_n": len(part)}


@register("teacher_race")
class TeacherRace(Teacher):
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
        base = ctx.homogeneous(label)
        teachers = ctx.run_trials([TrialRequest(base, s, self.teach_steps, trial_name(ctx, base, s, "teacher-"))
                                   for s in seeds], f"teacher {label}")
        per_seed = [self.search_seed(ctx, s, rec) for s, rec in zip(seeds, teachers)]
        stages = self.race(ctx, seeds, label, teachers, per_seed, ledger)
        picks = [stage["pick_choice"] or pick for stage, (pick, _) in zip(stages, per_seed)]
        weight, _ = self.cost_term()
        return ctx.evidence(self.name, seeds=seeds, picks=picks,
                            measured=merge_measured(ctx, [m for _, m in per_seed], self.total_steps),
                            wall_seconds=time.perf_counter() - t0,
                            stages=[{k: v for k, v in st.items() if k != "pick_choice"} for st in stages] +
                            [self.account(ledger, len(seeds))],
                            notes=[f"teacher {label} trained {self.teach_steps} steps; students adapted "
                                   f"{self.adapt_steps} steps from its weights (not full trainings), scored on the "
                                   f"teacher's held-out examples; KL tolerance {self.config.kl_tolerance}, tie margin "
                                   f"{self.config.tie_margin}, cost weight {weight}; where the pick kept the teacher's type, "
                                   f"every type its students could not rule out raced it from scratch (stages)"])

    def race_steps(self, n: int) -> int:
        """Steps of each of n challengers: race_fraction, or less so that all fit in race_budget."""
        return max(1, round(min(self.config.race_fraction, self.config.race_budget / max(1, n)) * self.total_steps))

    def race(self, ctx, seeds, label, teachers, per_seed, ledger: Ledger) -> list[dict]:
        """One stage record per seed; a winning challenger's from-scratch record replaces its student's."""
        base, cost = ctx.homogeneous(label), ctx.cost.of_choice
        self.budget = {"stage": "budget", "max_cost": self.config.max_cost}
        stages, requests = [], []
        for seed, rec, (pick, measured) in zip(seeds, teachers, per_seed):
            students = [{"label": ctx.label_choice(m["choice"])[next(iter(m["choice"]))][0],
                         "utility": self.utility(m["score"], cost(m["choice"])), "se": m.get("drop_se")}
                        for m in measured if m["kind"] == "homogeneous" and m["choice"] != base]
            keeps = label in {l for ls in ctx.label_choice(pick).values() for l in ls}
            found = contenders(self.utility(rec["score"], cost(base)), students) if keeps else []
            stage = {"stage": "race", "seed": seed, "teacher": label, "teacher_steps": self.teach_steps,
                     "defender": ctx.label_choice(pick), "contenders": found, "races": [], "pick": None,
                     "steps": self.race_steps(len(found)) if found else None, "pick_choice": None,
                     "verdict": "no contender" if keeps else "the pick keeps no layer of the teacher's type"}
            stages.append(stage)
        self.fit_budget(ctx, ledger, seeds, label, teachers, stages)
        for stage in stages:
            seed = stage["seed"]
            for c in stage["contenders"]:
                choice = ctx.homogeneous(c["label"])
                requests.append(TrialRequest(choice, seed, stage["steps"], trial_name(ctx, choice, seed, "race-"),
                                             measure=functools.partial(wide_scores, batches=self.config.race_batches)))
        records = iter(ctx.run_trials(requests, "race: contenders from scratch") if requests else [])
        for stage, rec, (pick, measured) in zip(stages, teachers, per_seed):
            if stage["contenders"]:
                self.judge(ctx, stage, self.trial_of(ctx, pick, rec), [next(records) for _ in stage["contenders"]],
                           measured)
            stage["pick"] = stage["pick"] or ctx.label_choice(pick)
            RunDir(ctx.out, resume=True).write_json(f"race_seed{stage['seed']}.json",
                                                    {k: v for k, v in stage.items() if k != "pick_choice"})
        return stages

    def fit_budget(self, ctx, ledger: Ledger, seeds, label: str, teachers, stages: list[dict]) -> None:
        """Size the race to what is left under max_cost (nasgraph.search.strategies._budget): fewer steps,
        then fewer contenders (the least promising first), else none; a cut is a `race_cut` warning."""
        cfg, budget = self.config, self.budget
        for seed, rec in zip(seeds, teachers):
            scored = len(ctx.score_split(ctx.splits(seed)))
            ledger.add(label, rec, scored)
            for other in (o for o in ctx.homogeneous_labels() if o != label):
                choice = ctx.homogeneous(other)
                name = trial_name(ctx, choice, seed, "student-")
                ledger.add(other, finished(ctx, TrialRequest(choice, seed, self.adapt_steps, name)), scored)
        unit, spent, racing = ledger.unit, ledger.spent(), [st for st in stages if st["contenders"]]
        budget.update(unit_cpu_seconds=unit and round(unit, 2),
                      spent_before_race=unit and round(spent / unit / len(seeds), 3))
        if cfg.max_cost is None or unit is None or not racing:
            return
        splits = ctx.splits(seeds[0])
        race_n = min(len(splits["arch"]), cfg.race_batches * ctx.train.batch_size)
        allowed = cfg.max_cost * unit * len(seeds) - spent - RESERVE * unit * len(seeds)
        wanted = {st["seed"]: list(st["contenders"]) for st in racing}
        # measured on rank 0 and sent to every rank (torchrun: the ranks train the race's trials together)
        k, cap, predicted = distributed.from_rank0(lambda: fit_race(
            [[c["label"] for c in st["contenders"]] for st in racing], self.race_steps, ledger, allowed,
            max(1, round(cfg.race_min_fraction * self.total_steps)), len(ctx.score_split(splits)), race_n, label))
        cuts = []
        for st in racing:
            found = wanted[st["seed"]]
            st["contenders"], st["dropped"] = found[:k], [c["label"] for c in found[k:]]
            configured = self.race_steps(len(st["contenders"]))
            st["steps"] = min(configured, cap) if k else None
            if not k:
                st["verdict"] = "no race: max_cost reached"
            if st["dropped"] or (k and st["steps"] < configured):
                cuts.append(f"seed {st['seed']}: " + (f"{', '.join(c['label'] for c in st['contenders'])} at "
                                                      f"{st['steps']} steps (configured {configured})"
                                                      if k else "no race") +
                            (f", {', '.join(st['dropped'])} not raced" if st["dropped"] and k else ""))
        budget.update(allowed_for_race=round(allowed / unit / len(seeds), 3), race_steps=cap,
                      race_predicted=round(predicted / unit / len(seeds), 3))
        if cuts:
            budget["warning"] = {
                "code": "race_cut",
                "message": f"the race was cut to keep the search under max_cost {cfg.max_cost} standalone trainings "
                           f"per seed ({spent / unit / len(seeds):.2f} spent before it; one training ~"
                           f"{unit:.3g} CPU s, measured): {'; '.join(cuts)}; a shorter race rules fewer types in",
                "fix": "raise max_cost, or lower teacher_fraction / adapt_fraction to leave the race more"}

    def account(self, ledger: Ledger, n_seeds: int) -> dict:
        """The budget stage: the cap, the unit, and what the search spent up to its pick (measured)."""
        unit, cap = ledger.unit, self.config.max_cost
        out = {**self.budget, "spent_cpu_seconds": round(ledger.spent(), 2),
               "spent": unit and round(ledger.spent() / unit / n_seeds, 3)}
        if cap is not None and out["spent"] and out["spent"] > cap and "warning" not in out:
            out["warning"] = {   # the race is the only part the cap resizes; the teacher phase is fixed
                "code": "over_max_cost",
                "message": f"the search cost {out['spent']:.2f} standalone trainings per seed, over max_cost {cap}, "
                           f"before any race: the cap resizes only the race, not the teacher phase (the teacher at "
                           f"teacher_fraction {self.config.teacher_fraction}, each student at adapt_fraction "
                           f"{self.config.adapt_fraction} plus its scoring; a costly teacher or many students)",
                "fix": "lower teacher_fraction / adapt_fraction, fewer candidates, or a cheaper teacher"}
        return out

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

    def judge(self, ctx, stage: dict, defender: tuple[str, dict], challengers: list[dict], measured: list[dict]) -> None:
        """Score the pick (the defender) on the challengers' examples, decide, and record it in `stage`
        (and `measured`)."""
        seed, metric, steps = stage["seed"], ctx.task.score_name, stage["steps"]
        mine = wide_scores(ctx, load_model(ctx.out / "trials" / defender[0]), ctx.splits(seed), self.config.race_batches)
        defender_utility = self.utility(mine["wide_score"], ctx.cost.of_choice(defender[1]))
        for c, rec in zip(stage["contenders"], challengers):
            diff = self.utility(rec["wide_score"], ctx.cost.of_choice(rec["choice"])) - defender_utility
            paired = paired_difference(rec["wide"], mine["wide"])
            se = paired[1] if paired else None
            stage["races"].append({"candidate": c["label"], "score": rec["wide_score"], "diff": diff, "se": se,
                                   "verdict": verdict(diff, se)})
        stage.update(eval_n=mine["wide_n"], defender_score=mine["wide_score"])
        best = max(zip(stage["races"], challengers), key=lambda x: x[0]["diff"])
        stage["verdict"] = best[0]["verdict"]
        winners = [(r, rec) for r, rec in zip(stage["races"], challengers) if r["verdict"] == "challenger wins"]
        if winners:
            _, rec = max(winners, key=lambda x: x[0]["diff"])
            stage["pick"], stage["pick_choice"] = ctx.label_choice(rec["choice"]), rec["choice"]
            for m in measured:
                if m["choice"] == rec["choice"]:      # its from-scratch record replaces the adapted student's
                    m.update(score=rec["score"], examples=rec["examples"], steps=steps,
                             source="trial (race, from scratch)", kl=None, kl_se=None, drop=None, drop_se=None)
        elif stage["verdict"] == "undecided":
            r = best[0]
            gap = metric_delta(metric, r["diff"]) + (f" +-{metric_delta(metric, r['se'])}" if r["se"] else "")
            stage["warning"] = {
                "code": "race_undecided",
                "message": f"seed {seed}: {r['candidate']} trained from scratch for {steps} steps led the pick "
                           f"(adapted from the teacher {stage['teacher']}, {self.teach_steps} steps) by {gap}, not "
                           f"significantly; the pick stayed, and the teacher's students favour its type",
                "fix": "raise search.steps or race_fraction, or train both standalone (nasgraph train)"}
