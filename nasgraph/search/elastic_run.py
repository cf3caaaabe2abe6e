"""The end of an elastic search (strategy evolution): the Pareto front of the metric against latency
(or FLOPs), each point a derived spec that compiles on its own, and the pick (the best score within
the budget) as derived.yaml.

RUN/search.json holds `elastic: true`, the space, the pick and the front; RUN/front/pointK.yaml the
derived spec of front point K (`nasgraph derive RUN --point K` writes the same); RUN/recommendation.json
the front as a user reads it, with each point's measured ONNX Runtime latency
(nasgraph.search.elastic_recommend).
"""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.graph.elastic import compile_subnet, subnet_model
from nasgraph.graph.subnet import SubNet, attention_candidates, elastic
from nasgraph.model import GraphModule
from nasgraph.search.elastic_recommend import elastic_recommendation, measure_front
from nasgraph.search.elastic_search import Scored, decode, pareto_front
from nasgraph.search.evidence import Evidence
from nasgraph.training.rundir import RunDir


def derive_subnet(raw: dict, graph, sub: SubNet) -> dict:
    """The raw spec of one sub-network: every elastic dimension and choice resolved, no search section."""
    derived = {**raw, "name": f"{raw['name']}-derived", "model": subnet_model(raw["model"], graph, sub)}
    derived.pop("search", None)
    return derived


def front_of(evidence: Evidence) -> list[Scored]:
    points = [Scored(SubNet.from_json(m.detail["subnet"]), m.scores[0],
                     {k: m.detail[k] for k in ("flops", "params", "latency_ms") if k in m.detail},
                     m.detail.get("generation", 0)) for m in evidence.measured]
    return pareto_front(points, evidence.cost_kind)


def write_elastic_outcome(doc, ctx, evidence: Evidence, out: str | Path) -> dict:
    space, candidates = elastic(ctx.graph), attention_candidates(ctx.graph)
    pick = decode(evidence.chosen, space)
    front = front_of(evidence)
    rows = [{"point": k, "subnet": p.sub.to_json(), "label": p.sub.label(candidates), "score": p.score,
             "generation": p.generation, **p.costs, "pick": p.sub == pick} for k, p in enumerate(front)]
    scored = [{"subnet": m.detail["subnet"], "label": m.labels["subnet"][0], "score": m.scores[0],
               **{k: m.detail[k] for k in ("flops", "params", "latency_ms") if k in m.detail}}
              for m in evidence.measured]
    budget = (ctx.search.options.get("budget") or None)
    outcome = {"strategy": evidence.strategy, "elastic": True, "metric": evidence.metric, "seeds": evidence.seeds,
               "space": space, "candidates": candidates, "choice": evidence.chosen, "subnet": pick.to_json(),
               "labels": {"subnet": [pick.label(candidates)]}, "cost_kind": evidence.cost_kind,
               "cost_range": list(evidence.cost_range), "budget": budget, "front": rows, "scored": scored,
               "wall_seconds": evidence.wall_seconds, "notes": evidence.notes,
               "per_seed": [{"seed": s, "choice": c} for s, c in zip(evidence.seeds, evidence.picks)]}
    run = RunDir(out, resume=True)
    run.write_json("search.json", outcome)
    run.write_json("evidence.json", evidence.to_json())
    run.write_spec(derive_subnet(doc.raw, ctx.graph, pick), "derived.yaml")
    (run.path / "front").mkdir(exist_ok=True)
    for k, p in enumerate(front):
        run.write_spec(derive_subnet(doc.raw, ctx.graph, p.sub), f"front/point{k}.yaml")
    latency_path = run.path / "latency.json"
    latency = json.loads(latency_path.read_text()) if latency_path.exists() else None
    measured = measure_front(rows, latency, ctx.latency_probe,
                             lambda sub: GraphModule(compile_subnet(doc, ctx.graph, sub)))
    run.write_json("recommendation.json", elastic_recommendation(outcome, candidates, latency, measured))
    return outcome
