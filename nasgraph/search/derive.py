"""A discrete architecture (node -> candidate per group) -> a derived spec in the same language.

The derived spec compiles on its own: the standard encoder becomes an explicit `layers` list; the
`graph` and `nodes` forms become explicit `nodes` (a repeated body can resolve differently per layer).
"""
from __future__ import annotations

import copy
from typing import Any

import networkx as nx

from nasgraph.graph.expand import INPUT


def resolved_attention(params: dict[str, Any], picks: list[int]) -> dict[str, Any]:
    """{candidates: [...], ...} + a pick per group -> {candidates: [one]} or {heads: [...]}."""
    cands = params["candidates"]
    out = {k: v for k, v in params.items() if k not in ("candidates", "granularity", "heads")}
    if len(set(picks)) == 1:
        return {"candidates": [copy.deepcopy(cands[picks[0]])], **out}
    return {"heads": [copy.deepcopy(cands[i]) for i in picks], **out}


def derive_spec(raw: dict, graph: nx.DiGraph, choice: dict[str, list[int]]) -> dict:
    """The raw spec with every choice point resolved by `choice`."""
    derived = copy.deepcopy(raw)
    derived["name"] = f"{raw['name']}-derived"
    derived.pop("search", None)
    model = derived["model"]
    if "graph" not in model and "nodes" not in model:
        n_layers = model.get("n_layers") or len(model["layers"])
        old = model.get("layers") or [{} for _ in range(n_layers)]
        layers = []
        for i in range(n_layers):
            node = graph.nodes[f"L{i}.attention"]
            layer = {k: v for k, v in old[i].items() if k != "attention"}
            att = resolved_attention(node["params"], choice[f"L{i}.attention"]) if f"L{i}.attention" in choice \
                else {k: v for k, v in node["params"].items() if k != "granularity"}
            layers.append({"attention": att, **layer})
        model.pop("attention", None)
        model["n_layers"], model["layers"] = n_layers, layers
        return derived
    nodes = {}
    for n in nx.topological_sort(graph):
        if n == INPUT:
            continue
        d = graph.nodes[n]
        params = resolved_attention(d["params"], choice[n]) if n in choice else dict(d["params"])
        nodes[n] = {"op": d["op"], "inputs": list(d["inputs"]), **params}
    model.pop("graph", None)
    model["nodes"] = nodes
    return derived
