"""`nasgraph search`: hand the compiled space to the strategy, write what it found, derive.

RUN/ holds spec.yaml (the snapshot), search.json (the pick, seed agreement, per-seed supernet
records), evidence.json and recommendation.json (nasgraph.search.recommend), derived.yaml, and the
strategy's own folders: seed<N>/ per supernet (darts, gdas, fixed) or trials/<arch>-s<seed>/ per
trained architecture (halving, teacher), each resumable.
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from nasgraph import distributed, tasks
from nasgraph.backends import open_backend
from nasgraph.errors import NasgraphError
from nasgraph.graph import compile_spec
from nasgraph.graph.summary import summarize
from nasgraph.search.context import SearchContext
from nasgraph.spec.checks import load_task_data
from nasgraph.graph.subnet import elastic
from nasgraph.search.derive import derive_spec
from nasgraph.search.elastic_run import write_elastic_outcome
from nasgraph.search.objective import CostTable
from nasgraph.search.recommend import write_recommendation
from nasgraph.search.strategies import get as get_strategy
from nasgraph.training.device import resolve_device, runtime_train
from nasgraph.training.rundir import RunDir
from nasgraph.training.run import check_head

RUN_WHERE = ("search.backend", "search.workers", "search.address", "search.gpus_per_trial")   # may change on --resume


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


def search_context(doc, out: str | Path, *, resume: bool, progress: bool, runtime=None) -> SearchContext:
    """Everything a strategy needs (`runtime`: the TrainSpec with its device resolved); under torchrun
    identical on every rank (rank 0 measures latency and loads the data first; its progress bars alone)."""
    spec = doc.spec
    graph = compile_spec(doc)
    summary = summarize(graph)
    check_elastic_strategy(doc, graph)
    if not summary.choice_points and elastic(graph) is None:
        raise NasgraphError(f"{doc.path}: the spec has no choice point (no attention with several candidates): "
                            f"nothing to search; use `nasgraph train`")
    run = RunDir(out, kind="search", resume=resume)   # refuse a used or foreign folder before any long work
    # a resumed run must be the same search; where its trials run may change (same records)
    if run.snapshot_spec(doc.raw, resume=resume, extend=RUN_WHERE):
        run.write_spec(doc.raw)
    cost = distributed.from_rank0(lambda: cost_table(spec, summary, graph, progress))   # torchrun: measured once
    task_config = tasks.parse_task(spec.task)
    with distributed.rank0_first():          # a download or cache the other ranks then read
        data = load_task_data(task_config, doc.error)
    task = tasks.get(task_config.kind)(task_config)
    check_head(doc, graph, data.class_names)
    return SearchContext(doc=doc, graph=graph, cost=cost, flops=CostTable.from_summary(summary), data=data,
                         task=task, out=Path(out), resume=resume, progress=progress and distributed.is_writer(),
                         runtime=runtime,
                         labels={cp.node: cp.candidates for cp in summary.choice_points},
                         steps=spec.search.steps or spec.train.steps, latency_probe=latency_probe(graph))


def check_elastic_strategy(doc, graph) -> None:
    """Elastic dimensions need an elastic strategy (evolution), and such a strategy needs them."""
    strategy = doc.spec.search.strategy
    wants = getattr(get_strategy(strategy), "elastic", False)
    if wants and elastic(graph) is None:
        raise doc.error(f"strategy '{strategy}' searches elastic dimensions, and the model has none: give d_model, "
                        f"n_heads, n_layers or ffn.mult as {{choices: [...]}}", ("search", "strategy"))
    if not wants and elastic(graph) is not None:
        raise doc.error(f"the model has elastic dimensions ({{choices: [...]}}), which strategy '{strategy}' does not "
                        f"search: use strategy: evolution", ("search", "strategy"))


def latency_probe(graph):
    """ONNX Runtime latency of a whole sub-network (exporters), for elastic searches; None otherwise."""
    if elastic(graph) is None:
        return None
    from exporters.subnet_latency import onnx_latency_ms
    return onnx_latency_ms


def cost_table(spec, summary, graph, progress: bool) -> CostTable:
    """The objective's cost table: FLOPs, or measured latency (cached per machine)."""
    latency = spec.search.objective.latency
    if latency is not None and latency.mode == "decode":  # per-token decode latency
        from exporters.decode_cost import decode_cost_table
        return decode_cost_table(summary, graph, latency.decode_context, threads=spec.bench.threads,
                                 progress=progress, backend=latency.backend)
    if latency is not None:  # measured ONNX Runtime latency of a forward pass
        from exporters.latency_table import latency_cost_table
        return latency_cost_table(summary, graph, threads=spec.bench.threads, progress=progress)
    return CostTable.from_summary(summary)


def run_search(doc, out: str | Path, *, resume: bool = False, progress: bool = True, device: str | None = None) -> dict:
    """Search `doc` into run folder `out` on `device` (--device; default train.device); under torchrun the
    ranks search data-parallel and rank 0 writes the folder."""
    runtime = runtime_train(doc, device)
    if getattr(get_strategy(doc.spec.search.strategy), "elastic", False) and \
            (distributed.launched() or resolve_device(runtime.device).type != "cpu"):
        raise doc.error(f"strategy '{doc.spec.search.strategy}' (elastic dimensions) runs as one process on the CPU "
                        f"for now (its sandwich training follows neither train.device nor torchrun): run it without "
                        f"torchrun, with --device cpu", ("search", "strategy"))
    if distributed.launched() and doc.spec.search.backend != "in-process":
        raise doc.error(f"under torchrun the ranks train every trial together (data-parallel); the "
                        f"'{doc.spec.search.backend}' backend runs trials in processes of its own: use one or the "
                        f"other (valid under torchrun: in-process)", ("search", "backend"))
    started = time.process_time()       # the search's cost counts from here (data, cost table, trials)
    with distributed.group(resolve_device(runtime.device)):   # torchrun's ranks; a no-op in one process
        ctx = search_context(doc, out, resume=resume, progress=progress, runtime=runtime)
        ctx.started = started
        return _search(doc, out, ctx)


def _search(doc, out: str | Path, ctx: SearchContext) -> dict:
    strategy = get_strategy(doc.spec.search.strategy)(doc.spec.search, ctx.steps, ctx.cost)
    search = doc.spec.search
    with open_backend(search.backend, search.workers, search.address, search.gpus_per_trial) as ctx.backend:
        evidence = strategy.run(ctx)
    if elastic(ctx.graph) is not None:
        return write_elastic_outcome(doc, ctx, evidence, out)
    voted, agree = agreement(evidence.picks)
    choice = evidence.chosen or voted
    outcome = {"strategy": evidence.strategy, "metric": evidence.metric, "seeds": evidence.seeds,
               "candidates": ctx.labels, "choice": choice, "agreement": agree, "labels": ctx.label_choice(choice), "cost": ctx.cost.of_choice(choice),
               "cost_kind": ctx.cost.kind, "cost_range": [ctx.cost.min_total, ctx.cost.max_total],
               "per_seed": per_seed_records(ctx, evidence)}
    run = RunDir(out, resume=True)
    run.write_json("search.json", outcome)
    run.write_spec(derive_spec(doc.raw, ctx.graph, choice), "derived.yaml")
    write_recommendation(out, evidence, flops=ctx.flops, latency=ctx.cost if ctx.cost.kind == "latency" else None)
    return outcome


def per_seed_records(ctx, evidence) -> list[dict]:
    """Per seed: the supernet's result.json (supernet strategies), else the seed's own pick."""
    return [RunDir.finished(ctx.out / f"seed{s}") or {"seed": s, "choice": c, "labels": ctx.label_choice(c)}
            for s, c in zip(evidence.seeds, evidence.picks)]
