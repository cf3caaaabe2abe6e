"""A discrete architecture (node -> candidate per group) -> a derived spec in the same language.

The derived spec compiles on its own: the standard encoder becomes an explicit `layers` list; the
compact `graph` form stays compact when every copy of a repeated body resolves alike, else it
becomes explicit `nodes` (as the `nodes` form stays).
One derive path: the spec from `derive_spec`, compiled by the same GraphModule; `inherit_weights`
copies a supernet's weights into it, and `choice_mixing` runs the same architecture inside the
supernet (one-hot mixing), so the two can be checked against each other.
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Iterator

import networkx as nx
import torch
import torch.nn.functional as F

from nasgraph.errors import NasgraphError
from nasgraph.graph.expand import INPUT
from nasgraph.model import module_key


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
    if "graph" in model and _resolve_compact(model, graph, choice):
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


def _resolve_compact(model: dict, graph: nx.DiGraph, choice: dict[str, list[int]]) -> bool:
    """Resolve the choice points in place in the compact `graph:` form. False (model untouched) when a
    repeated body resolves differently per copy: only explicit `nodes` can say that."""
    by_path: dict[tuple, list[dict]] = {}
    for n, picks in choice.items():
        d = graph.nodes[n]
        by_path.setdefault(tuple(d["path"]), []).append(resolved_attention(d["params"], picks))
    if any(r != found[0] for found in by_path.values() for r in found):
        return False
    for path, found in by_path.items():   # path: ("model", "graph", i, ..., "attention")
        parent = model
        for key in path[1:-1]:
            parent = parent[key]
        parent[path[-1]] = found[0]
    return True


class ChoiceMixer:
    """A mixer that runs one discrete architecture in the supernet: one-hot weights (G, C) per node."""

    def __init__(self, choice: dict[str, list[int]]):
        self.choice = choice

    def __call__(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        idx = torch.tensor(self.choice[node], device=alpha.device)            # (G,)
        return F.one_hot(idx, alpha.shape[-1]).to(alpha.dtype)                # (G, C)


@contextlib.contextmanager
def choice_mixing(supernet, choice: dict[str, list[int]]) -> Iterator[None]:
    """Within the block, the supernet computes `choice` (with its shared weights); mixers restored after."""
    layers = supernet.mixed_layers()
    saved = {n: layer.mixer for n, layer in layers.items()}
    mixer = ChoiceMixer(choice)
    try:
        for layer in layers.values():
            layer.mixer = mixer
        yield
    finally:
        for n, layer in layers.items():
            layer.mixer = saved[n]


def _head_slice(src: torch.Tensor, shape: torch.Size, heads: list[int], n_heads: int, where: str) -> torch.Tensor:
    """The part of a supernet tensor (all H heads) that belongs to `heads`, matched to `shape` by its
    dims: a dim of H * dh keeps those heads' rows, a dim of H those heads, equal dims stay whole."""
    if src.shape == shape:
        return src
    if src.dim() != len(shape):
        raise NasgraphError(f"{where}: cannot take heads {heads} of a {tuple(src.shape)} tensor into {tuple(shape)}")
    idx, k = torch.tensor(heads), len(heads)
    out = src
    for d, (a, b) in enumerate(zip(src.shape, shape)):
        if a == b:
            continue
        if a % n_heads == 0 and b == k * (a // n_heads):
            out = out.unflatten(d, (n_heads, a // n_heads)).index_select(d, idx).flatten(d, d + 1)
        else:
            raise NasgraphError(f"{where}: dim {d} is {a} in the supernet and {b} in the derived model; "
                                f"not a per-head dim of {n_heads} heads")
    return out


def _layer_state(mixed, derived_inner, picks: list[int], node: str) -> dict[str, torch.Tensor]:
    """State of a derived attention layer (plain or HeteroAttention) taken from a MixedAttention."""
    want = derived_inner.state_dict()
    state = {f"out_proj.{k}": v for k, v in mixed.out_proj.state_dict().items()}
    if len(set(picks)) == 1:                           # homogeneous: the candidate as it is
        cand = mixed.candidates[picks[0]].state_dict()
        return {**state, **{k: cand[k] for k in want if not k.startswith("out_proj.")}}
    labels = [mixed.labels[c] for c in picks]
    for g, label in enumerate(dict.fromkeys(labels)):  # HeteroAttention: groups in first-seen order
        heads = [h for h, l in enumerate(labels) if l == label]
        cand = mixed.candidates[picks[heads[0]]].state_dict()
        for k, v in cand.items():
            key = f"groups.{g}.{k}"
            state[key] = _head_slice(v, want[key].shape, heads, len(picks), f"{node} {label} '{k}'")
    return state


def inherit_weights(supernet, derived, choice: dict[str, list[int]]) -> None:
    """Copy the supernet's weights into the model derived from `choice` (same graph, choices resolved):
    with one-hot mixing weights for `choice`, both then compute the same function."""
    mixed = supernet.mixed_layers()
    state = {}
    for node in derived.order:
        key = module_key(node)
        if node in mixed:
            inner = _layer_state(mixed[node], derived.nodes[key].inner, choice[node], node)
            state.update({f"nodes.{key}.inner.{k}": v for k, v in inner.items()})
        else:
            state.update({f"nodes.{key}.{k}": v for k, v in supernet.nodes[key].state_dict().items()})
    derived.load_state_dict(state)


def check_choice(choice: Any, graph: nx.DiGraph, where: Any) -> None:
    """A recorded pick (search.json) must name every choice point of the spec, one valid index per group."""
    points = {n: d for n, d in graph.nodes(data=True) if d.get("choice")}
    if not isinstance(choice, dict) or set(choice) != set(points):
        names = sorted(choice) if isinstance(choice, dict) else type(choice).__name__
        raise NasgraphError(f"{where}: the recorded choice names {names} but the run's spec has the choice points "
                            f"{sorted(points)}: damaged or from another spec")
    for node, picks in choice.items():
        n_cands = len(points[node]["params"]["candidates"])
        groups = graph.graph["ctx"]["n_heads"] if points[node].get("granularity") == "head" else 1
        if (not isinstance(picks, list) or len(picks) != groups
                or not all(type(i) is int and 0 <= i < n_cands for i in picks)):
            raise NasgraphError(f"{where}: choice for {node} is {picks!r}: expected a list of candidate indices "
                                f"0..{n_cands - 1}, one per group ({groups})")
