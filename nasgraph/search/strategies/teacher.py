"""Teacher-guided layer selection (KL-guided layer selection, arXiv 2512.20569; FlashMorph, 2606.30562).

Train the most expressive candidate once (the teacher: `teacher`, default softmax if offered, else
the costliest type). Then, for each layer and each cheaper type, start a student from the teacher's
weights with that one layer replaced, adapt it briefly, and measure the KL divergence of its output
distribution to the teacher's on the search's held-out slice. Replacements are taken greedily, lowest
KL first: while the cost is above `objective.*.target` (a share of the costliest architecture), and
after that whenever KL <= kl_tolerance + weight x (cost saved / costliest architecture). Homogeneous
students (every layer replaced) are scored too, for the ranking; one that beats the pick by more than
`margin` on the task metric (minus the cost term) replaces it. About one training in all.
"""
from __future__ import annotations

import time
from functools import partial

import torch
import torch.nn.functional as F
from pydantic import Field

from nasgraph.config import StrictConfig
from nasgraph.errors import ConfigError
from nasgraph.search.evidence import Evidence
from nasgraph.search.strategies._supernet import merge_measured
from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import register
from nasgraph.search.trials import TrialRequest, load_model, trial_name
from nasgraph.tasks.batching import batches
from nasgraph.training.losses import IGNORE
from nasgraph.training.device import module_device, to_device
from nasgraph.training.rundir import RunDir


class TeacherConfig(StrictConfig):
    teacher: str | None = None                    # a candidate label; default softmax, else the costliest
    teacher_fraction: float = Field(0.6, gt=0, le=1)   # the teacher's training, a share of search.steps
    adapt_fraction: float = Field(0.05, gt=0, le=1)    # each student's adaptation
    final_fraction: float = Field(0.1, ge=0, le=1)     # adaptation of a pick with several replacements
    kl_tolerance: float = Field(0.02, ge=0)       # nats: a replacement this close to the teacher is free
    margin: float = Field(0.02, ge=0)             # a homogeneous student must beat the pick by this much


@torch.no_grad()
def kl_to_teacher(teacher, student, split, batch_size: int) -> float:
    """Mean KL(teacher || student) of the output distributions over the labelled positions."""
    teacher.eval(), student.eval()
    device = module_device(student)
    teacher.to(device)
    total, n = 0.0, 0
    for tokens, labels in batches(split, batch_size, shuffle=False, seed=0, epoch=0):
        tokens, labels = to_device((tokens, labels), device)
        keep = labels.flatten() != IGNORE
        p = F.log_softmax(teacher(tokens).flatten(0, -2)[keep], -1)           # (N, C)
        q = F.log_softmax(student(tokens).flatten(0, -2)[keep], -1)           # (N, C)
        total += float(F.kl_div(q, p, log_target=True, reduction="sum"))
        n += int(keep.sum())
    return total / max(1, n)


def greedy(replacements: list[dict], start_cost: float, cost_max: float, weight: float, target: float | None,
           tolerance: float) -> list[dict]:
    """Accepted replacements ({node, label, kl, saving}), lowest KL first, at most one per node."""
    accepted, cost, taken = [], start_cost, set()
    for r in sorted(replacements, key=lambda r: (r["kl"], -r["saving"])):
        if r["node"] in taken:
            continue
        over_budget = target is not None and cost > target * cost_max
        if over_budget or r["kl"] <= tolerance + weight * r["saving"] / cost_max:
            accepted.append(r)
            taken.add(r["node"])
            cost -= r["saving"]
    return accepted


def teacher_kl(teacher: str, ctx, model, splits) -> dict:
    """A student's measure: KL to the teacher trial `teacher` on the scored slice of `splits`."""
    reference = load_model(ctx.out / "trials" / teacher)
    return {"kl": kl_to_teacher(reference, model, ctx.score_split(splits), ctx.train.batch_size)}


@register("teacher")
class Teacher(Strategy):
    Config = TeacherConfig

    def teacher_label(self, ctx) -> str:
        labels = ctx.homogeneous_labels()
        if self.config.teacher is not None:
            if self.config.teacher not in labels:
                raise ConfigError(f"teacher '{self.config.teacher}' is not offered at every choice point; "
                                  f"valid: {', '.join(labels)}", key="teacher")
            return self.config.teacher
        if not labels:
            raise ConfigError("teacher: no candidate is offered at every choice point", key="strategy")
        named = [l for l in labels if l.split("(")[0] == "softmax"]
        return named[0] if named else max(labels, key=lambda l: ctx.cost.of_choice(ctx.homogeneous(l)))

    def run(self, ctx) -> Evidence:
        t0, seeds = time.perf_counter(), list(self.search.seeds)
        base = ctx.homogeneous(self.teacher_label(ctx))
        teachers = ctx.run_trials([TrialRequest(base, s, self.teach_steps, trial_name(ctx, base, s, "teacher-"))
                                   for s in seeds], f"teacher {self.teacher_label(ctx)}")
        per_seed = [self.search_seed(ctx, seed, rec) for seed, rec in zip(seeds, teachers)]
        weight, _ = self.cost_term()
        return ctx.evidence(self.name, seeds=seeds, picks=[p for p, _ in per_seed],
                            measured=merge_measured(ctx, [m for _, m in per_seed], self.total_steps),
                            wall_seconds=time.perf_counter() - t0,
                            notes=[f"teacher {self.teacher_label(ctx)} trained {self.teach_steps} steps; students "
                                   f"adapted {self.adapt_steps} steps from its weights (their scores are not full "
                                   f"trainings); KL tolerance {self.config.kl_tolerance}, cost weight {weight}"])

    @property
    def teach_steps(self) -> int:
        return max(1, round(self.config.teacher_fraction * self.total_steps))

    @property
    def adapt_steps(self) -> int:
        return max(1, round(self.config.adapt_fraction * self.total_steps))

    def search_seed(self, ctx, seed: int, rec: dict) -> tuple[dict, list[dict]]:
        """The pick and the measured architectures of one seed, given its trained teacher's record."""
        label = self.teacher_label(ctx)
        base = ctx.homogeneous(label)
        split = ctx.score_split(ctx.splits(seed))
        request = lambda c, steps, tag: TrialRequest(c, seed, steps, trial_name(ctx, c, seed, tag),
                                                     init_from=rec["name"], measure=partial(teacher_kl, rec["name"]))
        adapt = lambda c, steps, tag: ctx.run_trials([request(c, steps, tag)], f"teacher {label}: pick")[0]
        measured = [{"choice": base, "kind": "homogeneous", "score": rec["score"], "kl": 0.0,
                     "steps": self.teach_steps}]
        students, singles = self.students(ctx, label, base), []
        records = ctx.run_trials([request(c, self.adapt_steps, "student-") for c, _ in students],
                                 f"teacher {label}: students (seed {seed})")
        for (choice, single), r in zip(students, records):
            m = {"choice": choice, "kind": ctx.kind(choice), "score": r["score"], "kl": r["kl"],
                 "steps": self.teach_steps + self.adapt_steps}
            measured.append(m)
            if single is not None:
                singles.append({**single, **m})
        pick = self.assemble(ctx, base, singles, rec["score"], adapt)
        RunDir(ctx.out, resume=True).write_json(f"teacher_seed{seed}.json", {
            "teacher": label, "teacher_score": rec["score"], "replacements": singles,
            "pick": ctx.label_choice(pick["choice"]), "pick_score": pick["score"]})
        measured += [pick] if all(m["choice"] != pick["choice"] for m in measured) else []
        for m in measured:
            m.update(source="trial" if m["choice"] == base else "adapted from the teacher", eval_n=len(split))
        homo = [m for m in measured if m["kind"] == "homogeneous"]
        best = max(homo, key=lambda m: self.utility(m["score"], ctx.cost.of_choice(m["choice"])))
        if self.utility(best["score"], ctx.cost.of_choice(best["choice"])) > \
                self.utility(pick["score"], ctx.cost.of_choice(pick["choice"])) + self.config.margin:
            pick = best
        return pick["choice"], measured

    @staticmethod
    def students(ctx, label: str, base: dict) -> list[tuple[dict, dict | None]]:
        """(choice, replacement) for each layer replaced by each cheaper type, then (choice, None) for
        each other homogeneous architecture (for the ranking) not already among them."""
        out = []
        for node, labels in ctx.labels.items():
            for c, other in enumerate(labels):
                choice = {**base, node: [c] * len(base[node])}
                saving = ctx.cost.of_choice(base) - ctx.cost.of_choice(choice)
                if other != label and saving > 0:
                    out.append((choice, {"node": node, "index": c, "label": other, "saving": saving}))
        for other in ctx.homogeneous_labels():
            choice = ctx.homogeneous(other)
            if other != label and all(choice != c for c, _ in out):
                out.append((choice, None))
        return out

    def assemble(self, ctx, base: dict, singles: list[dict], teacher_score: float, adapt) -> dict:
        """The greedy pick, measured: the teacher, one scored replacement, or the adapted combination."""
        weight, target = self.cost_term()
        accepted = greedy(singles, ctx.cost.of_choice(base), ctx.cost.max_total, weight, target,
                          self.config.kl_tolerance)
        if not accepted:
            return {"choice": base, "kind": "homogeneous", "score": teacher_score, "kl": 0.0, "steps": self.teach_steps}
        if len(accepted) == 1:
            one = accepted[0]
            return {"choice": one["choice"], "kind": ctx.kind(one["choice"]), "score": one["score"], "kl": one["kl"],
                    "steps": one["steps"]}
        choice = dict(base)
        for r in accepted:
            choice[r["node"]] = [r["index"]] * len(base[r["node"]])
        if not self.config.final_fraction:
            return {"choice": choice, "kind": "pick", "score": min(r["score"] for r in accepted), "kl": None,
                    "steps": self.teach_steps + self.adapt_steps}
        steps = max(1, round(self.config.final_fraction * self.total_steps))
        r = adapt(choice, steps, "pick-")
        return {"choice": choice, "kind": "pick", "score": r["score"], "kl": r["kl"], "steps": self.teach_steps + steps}
