"""recommendation.json of an elastic search (strategy evolution): the pick and the Pareto front of the
supernet's metric against latency (or FLOPs), each point with its dimensions, its score, its predicted
and measured ONNX Runtime latency, FLOPs, parameters and the derived spec that retrains it.

The scores are read off the shared weights (one supernet, one seed): they rank sub-networks, they are
not what each reaches trained on its own, so the recommendation says so and names how to retrain.
"""
from __future__ import annotations

from typing import Callable

from nasgraph.graph.subnet import SubNet

SOURCE = "shared-weights"


def dims(sub: SubNet, candidates: list[list[str]]) -> dict:
    """The sub-network's dimensions, its attention as candidate labels."""
    return {"d_model": sub.d_model, "n_heads": sub.n_heads, "n_layers": sub.n_layers,
            "ffn_mult": list(sub.ffn_mult), "attention": [candidates[i][a] for i, a in enumerate(sub.attention)]}


def measure_front(front: list[dict], latency: dict | None, probe: Callable | None,
                  module: Callable[[SubNet], object]) -> dict[int, float]:
    """ONNX Runtime ms of each front point, timed as the predictor's samples were (latency.json's batch,
    T, threads, percentile); {} without a latency predictor."""
    if probe is None or not latency or "model" not in latency:
        return {}
    return {p["point"]: probe(module(SubNet.from_json(p["subnet"])), batch=latency["batch"],
                              seq_len=latency["seq_len"], threads=latency["threads"],
                              percentile=latency.get("percentile", 50))
            for p in front}


def elastic_recommendation(outcome: dict, candidates: list[list[str]], latency: dict | None,
                           measured_ms: dict[int, float]) -> dict:
    """The recommendation record of an elastic search (`outcome`: search.json's record)."""
    metric, key = outcome["metric"], outcome["cost_kind"]
    front = []
    for p in outcome["front"]:
        sub = SubNet.from_json(p["subnet"])
        front.append({"point": p["point"], "label": p["label"], "dims": dims(sub, candidates), metric: p["score"],
                      "source": SOURCE, "latency_ms_predicted": p.get("latency_ms"),
                      "latency_ms_measured": measured_ms.get(p["point"]), "flops": p["flops"],
                      "params": p["params"], "spec": f"front/point{p['point']}.yaml", "pick": p["pick"]})
    pick = next((p for p in front if p["pick"]), None)
    budget = outcome.get("budget")
    if pick is None:     # the pick is not on the front when a cheaper point scores as high
        pick = {"label": outcome["labels"]["subnet"][0], "spec": "derived.yaml"}
    headline = (f"pick `{pick['label']}`" + (f": {metric} {pick[metric]:.4f} on shared weights" if metric in pick
                                             else "") + (f" within the budget {budget}" if budget else "")
                + f"; Pareto front of {len(front)} point(s) over {len(outcome['scored'])} scored sub-networks")
    warnings = [{"code": "shared-weights",
                 "message": "scores are the supernet's estimates (shared weights, one seed); retrain the points "
                            "you consider: nasgraph train RUN/front/pointK.yaml --out runs/pK"}]
    cv = (latency or {}).get("cv_median_rel_error")
    if cv is not None and cv > 0.10:
        warnings.append({"code": "latency-predictor",
                         "message": f"the latency predictor's held-out median error is {100 * cv:.1f}% (5-fold over "
                                    f"{len(latency['samples'])} timed sub-networks): compare measured latencies, or "
                                    f"raise search.latency_samples"})
    return {"elastic": True, "strategy": outcome["strategy"], "metric": metric, "cost_kind": key, "budget": budget,
            "seeds": outcome["seeds"], "source": SOURCE, "headline": headline, "pick": pick, "front": front,
            "latency_predictor": None if not latency or "model" not in latency else
            {"samples": len(latency["samples"]), "cv_median_rel_error": cv, "percentile": latency.get("percentile"),
             "batch": latency["batch"], "seq_len": latency["seq_len"], "threads": latency["threads"]},
            "warnings": warnings}


def front_lines(rec: dict, markdown: bool = False) -> list[str]:
    """The front as a table (markdown) or aligned text: point, sub-network, metric, latency, FLOPs, params."""
    from nasgraph.textfmt import human, table

    m = rec["metric"]
    ms = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    rows = [[p["point"], p["label"], f"{p[m]:.4f}", ms(p["latency_ms_predicted"]), ms(p["latency_ms_measured"]),
             human(p["flops"]), human(p["params"]), "pick" if p["pick"] else "", p["spec"]] for p in rec["front"]]
    head = ["point", "sub-network", f"{m} (shared)", "ms pred.", "ms meas.", "FLOPs", "params", "", "spec"]
    return table(rows, head, markdown=markdown).splitlines()
