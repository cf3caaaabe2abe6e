"""What the runner hands a strategy: the compiled space, its cost table, the data, the run folder.

`splits(seed)` carves the search's own held-out slice ("arch") out of train: architectures are
scored there, so the val and test splits stay untouched by the search. `score(model, split)` is the
task's headline metric on it as a higher-is-better score (`Task.score`: acc, answer_acc,
-bits_per_byte).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import networkx as nx

from nasgraph.backends import TrialBackend, open_backend
from nasgraph.search.evidence import Evidence, Measured
from nasgraph.search.objective import CostTable
from nasgraph.search.trials import run_trials
from nasgraph.tasks.base import Split, Task, TaskData, carve
from nasgraph.training.data import evaluate

@dataclass
class SearchContext:
    doc: object                         # the SpecDocument searched
    graph: nx.DiGraph                   # the compiled supernet graph
    cost: CostTable                     # the objective's (FLOPs, or measured latency in us)
    flops: CostTable                    # FLOPs, for the recommendation
    data: TaskData
    task: Task                          # the task's metrics: what a score is
    labels: dict[str, list[str]]        # choice point -> candidate labels
    out: Path                           # the run folder
    steps: int                          # the budget unit: search.steps or train.steps
    resume: bool = False
    progress: bool = True
    runtime: object = None              # the TrainSpec with its device resolved (training.device.runtime_train)
    latency_probe: Callable | None = None   # elastic search: ONNX Runtime ms of a model (exporters.subnet_latency)
    backend: TrialBackend | None = field(default_factory=open_backend, repr=False)  # runs independent trials
    started: float | None = None        # process CPU time when the search began (a strategy's cost ledger)
    _splits: dict = field(default_factory=dict, repr=False)

    @property
    def search(self):
        return self.doc.spec.search

    @property
    def train(self):
        return self.runtime if self.runtime is not None else self.doc.spec.train

    def splits(self, seed: int) -> dict[str, Split]:
        """train / val / test plus "arch": a held-out slice of train (search.arch_fraction)."""
        if seed not in self._splits:
            train = self.data.splits["train"]
            rest, arch = carve(train, max(1, int(len(train) * self.search.arch_fraction)), seed)
            self._splits[seed] = {**self.data.splits, "train": rest, "arch": arch}
        return self._splits[seed]

    def score_split(self, splits: dict[str, Split]) -> Split:
        """The part of "arch" one score reads (search.score_batches batches)."""
        n = self.search.score_batches
        arch = splits["arch"]
        return arch if n is None else arch.subset(list(range(min(len(arch), n * self.train.batch_size))))

    def run_trials(self, requests: list, desc: str = "trials") -> list[dict]:
        """Records of a batch of independent `nasgraph.search.trials.TrialRequest`s, in order, run on
        the backend (finished ones are read back, not rerun)."""
        return run_trials(self, requests, desc)

    def score(self, model, split: Split) -> float:
        return self.task.score(evaluate(model, split, self.train.batch_size, task=self.task))

    # -- what strategies report, in the evidence's units (latency in ms) -----------------------------
    def arch_cost(self, choice: dict[str, list[int]]) -> float:
        cost = self.cost.of_choice(choice)
        return cost / 1000 if self.cost.kind == "latency" else cost          # latency table: us -> ms

    def measured(self, choice: dict[str, list[int]], scores: list[float], steps: int, kind: str,
                 detail: dict) -> Measured:
        return Measured(choice=choice, labels=self.label_choice(choice), scores=scores,
                        cost=self.arch_cost(choice), steps=steps, kind=kind, detail=detail)

    def evidence(self, strategy: str, **fields) -> Evidence:
        """An Evidence with this space's metric, cost unit, cost range and candidates filled in."""
        latency = self.cost.kind == "latency"
        scale = 1000 if latency else 1
        return Evidence(strategy=strategy, metric=self.task.score_name, cost_kind="latency_ms" if latency else "flops",
                        cost_range=(self.cost.min_total / scale, self.cost.max_total / scale),
                        candidates=self.labels, **fields)

    def label_choice(self, choice: dict[str, list[int]]) -> dict[str, list[str]]:
        return {n: [self.labels[n][i] for i in idx] for n, idx in choice.items()}

    def homogeneous(self, label: str) -> dict[str, list[int]] | None:
        """The architecture with `label` at every group of every choice point (None if a point lacks it)."""
        choice = {}
        for node, labels in self.labels.items():
            if label not in labels:
                return None
            choice[node] = [labels.index(label)] * len(self.cost_groups(node))
        return choice

    def kind(self, choice: dict[str, list[int]]) -> str:
        """"homogeneous" when every group of every point has the same type, else "mixed"."""
        return "homogeneous" if len({l for ls in self.label_choice(choice).values() for l in ls}) == 1 else "mixed"

    def cost_groups(self, node: str) -> range:
        return range(self.cost.heads[node] if self.cost.granularity[node] == "head" else 1)

    def homogeneous_labels(self) -> list[str]:
        """Candidate labels every choice point offers, in the first point's order."""
        first = next(iter(self.labels.values()))
        return [l for l in first if all(l in ls for ls in self.labels.values())]
