"""Accuracy, FLOPs and measured ONNX Runtime latency of run folders, and their Pareto front.

A train run gives its test accuracy (val when there is no test split) and its trained weights; a
search run gives its supernet's mean validation accuracy over seeds and its derived architecture
(seeded random weights: latency does not depend on them). FLOPs are nasgraph.flops counts of one
sequence at max_len; latency is the ORT p50 at batch 1, seq_len max_len, with the bench's settings.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import torch

from exporters.latency import ort_latency
from exporters.runtime import make_session
from nasgraph.errors import NasgraphError


def _accuracy_and_model(run: Path):
    from nasgraph.runfolder import kind_of
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete, load_trained
    from nasgraph.training.rundir import read_json

    kind = kind_of(run)
    if kind not in ("search", "train"):
        raise NasgraphError(f"{run}: {'not a run folder' if kind is None else f'a {kind} folder'}; --runs takes "
                            f"train or search run folders")
    if kind == "search":
        outcome = read_json(run / "search.json", "not a finished search run")
        try:
            accs = [r["final"]["val"]["acc"] for r in outcome["per_seed"] if "val" in r.get("final", {})]
        except (KeyError, TypeError, AttributeError):
            raise NasgraphError(f"{run / 'search.json'}: damaged search result (per_seed final val)") from None
        if not accs or not (run / "derived.yaml").exists():
            raise NasgraphError(f"{run}: a search run without validation results or derived.yaml")
        doc = load_spec(run / "derived.yaml")
        torch.manual_seed(0)
        _, model = build_discrete(doc)
        return "search", sum(accs) / len(accs), "supernet val", doc, model
    result = run / "result.json"
    if not result.exists():
        raise NasgraphError(f"{run}: neither a train run (result.json) nor a search run (search.json)")
    res = read_json(result)
    split = "test" if isinstance(res, dict) and "test" in res else "val"
    try:
        acc = float(res[split]["acc"])
    except (KeyError, TypeError, ValueError):
        raise NasgraphError(f"{result}: damaged train result (no {split} accuracy)") from None
    doc, model = load_trained(run)
    return "train", acc, split, doc, model


def run_point(run: str | Path, grid, exported: dict[str, Path] | None = None) -> dict:
    """One point: name, kind, accuracy (and which split), FLOPs, params, ORT p50 ms at (1, max_len).

    exported: resolved run path -> an .onnx of that run already at hand (not exported again).
    """
    from exporters.bench import export_twin
    from exporters.model_export import unpadded_path
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize

    run = Path(run)
    kind, acc, split, doc, model = _accuracy_and_model(run)
    summary = summarize(compile_spec(doc))
    T = model.ctx.max_len
    with tempfile.TemporaryDirectory(prefix="nasgraph-pareto-") as tmp:
        onnx_path = (exported or {}).get(str(run.resolve())) or export_twin(doc, model, Path(tmp) / "run.onnx")
        if unpadded_path(onnx_path).is_file():  # batch 1 has no padding: the graph `nasgraph predict` would run
            onnx_path = unpadded_path(onnx_path)
        session = make_session(onnx_path, grid.provider, threads=grid.threads, graph_opt=grid.graph_opt)
        tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(0))
        stats = ort_latency(session, {session.get_inputs()[0].name: tokens.numpy()}, warmup=grid.warmup,
                            repeats=grid.repeats, budget_s=grid.budget_s).stats
    return {"run": str(run), "name": run.name, "kind": kind, "acc": acc, "acc_split": split,
            "flops": summary.flops_min, "params": summary.params_total, "seq_len": T,
            "latency_p50_ms": stats.p50_ms, "latency_p90_ms": stats.p90_ms}


def pareto_front(points: Sequence[dict], cost: str = "latency_p50_ms") -> list[dict]:
    """Points no other point beats on both cost (lower; latency by default) and accuracy (higher), by cost."""
    front, best = [], float("-inf")
    for p in sorted(points, key=lambda p: (p[cost], -p["acc"])):
        if p["acc"] > best:
            front.append(p)
            best = p["acc"]
    return front
