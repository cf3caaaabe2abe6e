"""teacher_race's plan of the teacher phase: the race of untested types first, the refinement after.

A type whose student does not inherit all of its weights from the teacher is untested (`_race.untested`):
known from the built models before anything trains, and its race from scratch is the only evidence the
search can have on it. So where there is one, the per-layer students (they refine the pick among the
tested types) run only while they fit under `max_cost` beside that race. Once the teacher and every
type's homogeneous student are measured, the ledger (`_budget`) prices the untested types' race at its
configured steps (teacher_fraction: as long as the teacher), scored on the held-out slice alone (the
examples every trial scores; `fit_race`), and each per-layer student at its types' measured start-up,
steps and scoring, plus one adapted combination (`final_fraction`) where the kept students span two
layers; the students are kept in the spec's candidate order, each layer in turn, while they fit, the
others are not run. The `plan` stage records it, with a `students_cut` warning that names the max_cost
running them all. No untested type: every student runs, as in `teacher`.
"""
from __future__ import annotations

import math
import statistics

from nasgraph import distributed
from nasgraph.search.strategies._budget import RESERVE, UNCAPPED, Ledger, fit_race
from nasgraph.search.trials import TrialRequest, finished, trial_name


class StudentPlan:
    """teacher_race's `affordable` (a mixin of the strategy: config, inherits, race_steps, steps)."""

    def plans_students(self) -> bool:
        """Only under a cap, and where some type is untested (else every student runs in one batch)."""
        return self.config.max_cost is not None and any(f < self.config.inherit_min for f in self.inherits.values())

    def affordable(self, ctx, seed: int, label: str, singles: list[tuple[dict, dict]]) -> list[tuple[dict, dict]]:
        if not singles:
            return singles
        order = sorted(singles, key=lambda s: (s[1]["index"], list(ctx.labels).index(s[1]["node"])))
        # measured on rank 0 and sent to every rank (torchrun: the ranks must run the same students)
        n, stage = distributed.from_rank0(lambda: self.plan(ctx, seed, label, order))
        if stage is not None:
            self.plans.append(stage)
        return [s for s in singles if any(s[0] is c for c, _ in order[:n])]

    def plan(self, ctx, seed: int, label: str, order: list[tuple[dict, dict]]) -> tuple[int, dict | None]:
        """(how many of `order` fit beside the untested types' race, the plan stage)."""
        cfg, seeds = self.config, list(self.search.seeds)
        blind = [o for o, f in self.inherits.items() if f < cfg.inherit_min]
        done, base = seeds[:seeds.index(seed) + 1], ctx.homogeneous(label)
        ledger = Ledger(ctx, self.total_steps)
        for s in done:
            teacher = finished(ctx, TrialRequest(base, s, self.teach_steps, trial_name(ctx, base, s, "teacher-")))
            ledger.add_seed(ctx, s, label, teacher, self.adapt_steps)
        unit, scored = ledger.unit, len(ctx.score_split(ctx.splits(seed)))
        if unit is None:
            return len(order), None
        race = fit_race([blind], self.race_steps, ledger, UNCAPPED, 1, scored, 0, label)[3]
        spent = ledger.spent()
        allowed = len(done) * ((cfg.max_cost - RESERVE) * unit - race) - spent

        def price(labels, steps: int) -> float:      # a trial of these types (one per layer), measured rates
            return statistics.mean(ledger.start_of(t) + steps * ledger.rate_of(t) + scored * ledger.scoring_of(t)
                                   for t in labels)

        final = max(1, round(cfg.final_fraction * self.total_steps))
        combined = price(ctx.homogeneous_labels(), final) if cfg.final_fraction else 0.0
        prices = [price([t for ls in ctx.label_choice(c).values() for t in ls], self.adapt_steps) for c, _ in order]
        n, cost = 0, 0.0
        for (_, single), step in zip(order, prices):
            nodes = {s["node"] for _, s in order[:n]} | {single["node"]}
            if cost + step + (combined if len(nodes) > 1 else 0.0) > allowed:
                break
            n, cost = n + 1, cost + step
        skipped = [ctx.label_choice(c) for c, _ in order[n:]]
        needed = math.ceil(10 * (spent / len(done) + race + sum(prices) + combined + RESERVE * unit) / unit) / 10
        stage = {"stage": "plan", "seed": seed, "untested": blind, "race_reserved": round(race / unit, 3),
                 "allowed_for_students": round(allowed / unit, 3), "students_predicted": round(cost / unit, 3),
                 "students": n, "not_run": skipped}
        if skipped:
            stage["warning"] = {
                "code": "students_cut",
                "message": f"seed {seed}: {len(skipped)} of {len(order)} per-layer students not run, to leave the "
                           f"race of {', '.join(blind)} (untested by the teacher: no evidence without it) its "
                           f"{self.race_steps(blind)} steps under max_cost {cfg.max_cost} (reserved "
                           f"{race / unit:.2f} standalone trainings); the pick is chosen among fewer per-layer "
                           f"replacements",
                "fix": f"raise max_cost to {needed:g} (every student and the race, predicted from the measured "
                       f"CPU rates)"}
        return n, stage
