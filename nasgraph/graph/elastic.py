"""Elastic dimensions in the graph: the supernet is the spec compiled at the largest value of every
elastic dimension; a sub-network is the same spec with one value per dimension, compiled by the same
path (`compile_subnet`). `subnet_model` writes that spec's model section, which is also what
`nasgraph derive` writes: the derived spec of a sub-network compiles on its own.
"""
from __future__ import annotations

import copy

import networkx as nx

from nasgraph.graph.subnet import SubNet, elastic, largest, smallest, space_size
from nasgraph.spec.elastic import elastic_paths, values


def elastic_record(model, graph: nx.DiGraph) -> dict | None:
    """The space of a standard encoder with elastic dimensions (nasgraph.graph.subnet), else None."""
    if not elastic_paths(model):
        return None
    depth = max(values(model.n_layers))
    layers = model.layers or [None] * depth
    ffn = [(layer.ffn if layer is not None and layer.ffn is not None else model.ffn) for layer in layers]
    return {"d_model": sorted(values(model.d_model)), "n_heads": sorted(values(model.n_heads)),
            "n_layers": sorted(values(model.n_layers)), "ffn_mult": [sorted(values(f.mult)) for f in ffn],
            "attention": [len(graph.nodes[f"L{i}.attention"]["candidates"]) for i in range(depth)]}


def _number(m: float) -> float | int:
    return int(m) if float(m).is_integer() else m


def subnet_model(raw_model: dict, graph: nx.DiGraph, sub: SubNet) -> dict:
    """The raw model section of `sub`: one value per dimension and an explicit `layers` list, each with
    its FFN width and its one attention candidate (the other keys of the spec kept as written)."""
    model = copy.deepcopy(raw_model)
    base_ffn = dict(model.get("ffn") or {})
    old = model.pop("layers", None) or [{} for _ in range(sub.n_layers)]
    layers = []
    for i in range(sub.n_layers):
        params = graph.nodes[f"L{i}.attention"]["params"]
        att = {k: v for k, v in params.items() if k not in ("candidates", "granularity")}
        layer = {k: v for k, v in old[i].items() if k not in ("attention", "ffn")}
        layers.append({"attention": {"candidates": [copy.deepcopy(params["candidates"][sub.attention[i]])], **att},
                       "ffn": {**base_ffn, **(old[i].get("ffn") or {}), "mult": _number(sub.ffn_mult[i])}, **layer})
    model.pop("attention", None)
    if "ffn" in model:
        model["ffn"] = {**base_ffn, "mult": _number(sub.ffn_mult[0])}
    model.update(d_model=sub.d_model, n_heads=sub.n_heads, n_layers=sub.n_layers, layers=layers)
    return model


def check_subnet(graph: nx.DiGraph, sub: SubNet) -> None:
    """`sub` must lie in the graph's space (ValueError naming the bad value and the valid ones)."""
    space = elastic(graph)
    for key, value in (("d_model", sub.d_model), ("n_heads", sub.n_heads), ("n_layers", sub.n_layers)):
        if value not in space[key]:
            raise ValueError(f"{key} {value} is not in the space; valid: {space[key]}")
    for i, (m, a) in enumerate(zip(sub.ffn_mult, sub.attention)):
        if m not in space["ffn_mult"][i]:
            raise ValueError(f"layer {i}: ffn mult {m:g} is not in the space; valid: {space['ffn_mult'][i]}")
        if not 0 <= a < space["attention"][i]:
            raise ValueError(f"layer {i}: attention candidate {a} out of range 0..{space['attention'][i] - 1}")
    if len(sub.attention) != sub.n_layers:
        raise ValueError(f"{len(sub.attention)} attention picks for {sub.n_layers} layers")


def compile_subnet(doc, graph: nx.DiGraph, sub: SubNet) -> nx.DiGraph:
    """The graph of one sub-network: its spec (`subnet_model`) validated and compiled as any spec is."""
    from nasgraph.graph.build import compile_spec
    from nasgraph.spec.document import SpecDocument
    from nasgraph.spec.schema import ModelSpec

    check_subnet(graph, sub)
    raw = {**doc.raw, "model": subnet_model(doc.raw["model"], graph, sub)}
    spec = doc.spec.model_copy(update={"model": ModelSpec.model_validate(raw["model"])})
    return compile_spec(SpecDocument(spec=spec, raw=raw, path=doc.path, locations=doc.locations), force=True)


def summarize_elastic(doc, graph: nx.DiGraph, summary) -> dict | None:
    """Space size, and parameters and FLOPs of the smallest and the largest sub-network (each layer with
    its cheapest / costliest attention candidate by FLOPs), for `nasgraph compile`."""
    from nasgraph.graph.summary import summarize

    space = elastic(graph)
    if space is None:
        return None
    points = {cp.node: cp for cp in summary.choice_points}

    def attention(pick) -> tuple[int, ...]:
        out = []
        for i in range(len(space["attention"])):
            cp = points.get(f"L{i}.attention")
            out.append(cp.candidates.index(pick(cp.flops, key=cp.flops.get)) if cp else 0)
        return tuple(out)

    out = {"space": space, "space_size": space_size(space)}
    for name, build, pick in (("smallest", smallest, min), ("largest", largest, max)):
        sub = build(space, attention(pick))
        s = summarize(compile_subnet(doc, graph, sub))
        out[name] = {"subnet": sub.to_json(), "params": s.params_total, "flops": s.flops_shared}
    return out
