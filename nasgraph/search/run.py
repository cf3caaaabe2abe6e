"""`nasgraph search`: train the supernet with a strategy for each seed, pick, agree, derive.

RUN/ holds spec.yaml (the snapshot), search.json (choices per seed, agreement), derived.yaml,
evidence.json and recommendation.json (nasgraph.search.recommend), and one folder per seed
(metrics.jsonl, alphas.jsonl, checkpoints/, result.json).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch

from nasgraph import tasks
from nasgraph.errors import NasgraphError
from nasgraph.graph import compile_spec
from nasgraph.graph.summary import summarize
from nasgraph.model import GraphModule
from nasgraph.search.derive import derive_spec
from nasgraph.search.evidence_adapter import evidence_from_outcome, subnet_scores
from nasgraph.search.objective import CostTable
from nasgraph.search.recommend import write_recommendation
from nasgraph.search.strategies import get as get_strategy
from nasgraph.tasks.base import carve
from nasgraph.training.data import BatchStream, evaluate
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.losses import task_loss
from nasgraph.training.rundir import RunDir
from nasgraph.training.run import check_head


def search_splits(data, arch_fraction: float, seed: int) -> dict:
    """train/val/test plus "arch": a held-out slice of train the alphas (or DARTFormer scores) learn from."""
    n_arch = max(1, int(len(data.splits["train"]) * arch_fraction))
    train, arch = carve(data.splits["train"], n_arch, seed)
    return {**data.splits, "train": train, "arch": arch}


def finetune(model, splits, train_spec, steps: int) -> None:
    """A few plain weight steps (DARTFormer prune rounds)."""
    opt = torch.optim.AdamW(model.weight_parameters(), lr=train_spec.lr * 0.5, weight_decay=train_spec.weight_decay)
    stream = BatchStream(splits["train"], train_spec.batch_size, train_spec.seed + 7)
    model.train()
    for _ in range(steps):
        x, y = stream.next()
        opt.zero_grad(set_to_none=True)
        task_loss(model(x), y).backward()
        opt.step()


def agreement(choices: list[dict[str, list[int]]]) -> tuple[dict[str, list[int]], float]:
    """Majority vote per group over seeds (ties: earliest seed) and the share of groups all seeds agree on."""
    voted, agree, groups = {}, 0, 0
    for node in choices[0]:
        voted[node] = []
        for g in range(len(choices[0][node])):
            votes = [c[node][g] for c in choices]
            voted[node].append(Counter(votes).most_common(1)[0][0] if len(set(votes)) > 1 else votes[0])
            agree += len(set(votes)) == 1
            groups += 1
    return voted, agree / max(1, groups)


def run_search(doc, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict:
    spec, search = doc.spec, doc.spec.search
    graph = compile_spec(doc)
    summary = summarize(graph)
    if not summary.choice_points:
        raise NasgraphError(f"{doc.path}: the spec has no choice point (no attention with several candidates): "
                            f"nothing to search; use `nasgraph train`")
    if not search.seeds:
        raise doc.error("search.seeds is empty: give at least one seed, e.g. [0]", ("search", "seeds"))
    run = RunDir(out, kind="search", resume=resume)   # refuse a used or foreign folder before any long work
    run.snapshot_spec(doc.raw, resume=resume)          # a resumed run must be the same search
    if search.objective.latency is not None:  # measured ONNX Runtime latency (cached per machine)
        from exporters.latency_table import latency_cost_table
        cost = latency_cost_table(summary, graph, threads=spec.bench.threads, progress=progress)
    else:
        cost = CostTable.from_summary(summary)
    task_config = tasks.parse_task(spec.task)
    data, task = tasks.load_task(task_config), tasks.get(task_config.kind)(task_config)
    check_head(doc, graph, data.class_names)
    labels = {cp.node: cp.candidates for cp in summary.choice_points}
    steps = search.steps or spec.train.steps
    per_seed = []
    for seed in search.seeds:
        seed_dir = Path(out) / f"seed{seed}"
        done = RunDir.finished(seed_dir)
        if done is not None:
            per_seed.append(done)
            continue
        seed_run = RunDir(seed_dir, resume=resume and seed_dir.is_dir())
        seed_everything(seed)
        splits = search_splits(data, search.arch_fraction, seed)
        strategy = get_strategy(search.strategy)(search, steps, cost)
        model = GraphModule(graph)
        strategy.attach(model)
        train_spec = spec.train.model_copy(update={"seed": seed})
        result = fit(model, splits, train_spec, seed_run, steps=steps, strategy=strategy, resume=seed_run.resuming,
                     desc=f"search {search.strategy} seed {seed}", progress=progress, task=task)
        accuracy = lambda m: task.score(evaluate(m, splits["arch"], train_spec.batch_size, search.score_batches, task))
        choice = strategy.choose(model, accuracy=accuracy,
                                 finetune=lambda m, n: finetune(m, splits, train_spec, n))
        record = {"seed": seed, "choice": choice,
                  "labels": {n: [labels[n][i] for i in idx] for n, idx in choice.items()},
                  "cost": cost.of_choice(choice), "cost_kind": cost.kind, "final": result,
                  "probs": {n: p.detach().tolist() for n, p in strategy.probabilities(model).items()},
                  "scores": getattr(strategy, "scores", {}), **strategy.metrics(model),
                  "subnet_scores": subnet_scores(model, labels, choice, lambda m: evaluate(
                      m, splits["val"], train_spec.batch_size, search.score_batches, task), task.score)}
        seed_run.write_json("result.json", record)
        per_seed.append(record)
    voted, agree = agreement([r["choice"] for r in per_seed])
    outcome = {"strategy": search.strategy, "metric": task.score_name, "seeds": search.seeds, "candidates": labels,
               "choice": voted,
               "agreement": agree,
               "labels": {n: [labels[n][i] for i in idx] for n, idx in voted.items()},
               "cost": cost.of_choice(voted), "cost_kind": cost.kind, "cost_range": [cost.min_total, cost.max_total],
               "per_seed": per_seed}
    run.write_json("search.json", outcome)
    run.write_spec(derive_spec(doc.raw, graph, voted), "derived.yaml")
    write_recommendation(out, evidence_from_outcome(outcome, cost), flops=CostTable.from_summary(summary),
                         latency=cost if cost.kind == "latency" else None)
    return outcome
