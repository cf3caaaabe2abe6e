"""What a compiled graph costs: nodes, edges, parameters and FLOPs per candidate, search-space size.

FLOPs are counted with nasgraph.flops (1 multiply-add = 1 FLOP) for one sequence (B = 1) at the task's
max_len. Architecture extremes add the shared part (everything but the choice points) to the cheapest
or costliest choice at each point; per-head choices cost their heads (a 1-head module of the type)
plus the layer's shared out_proj, which is exact for types whose heads are independent and an
approximation for dcmha, whose heads interact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import torch

from nasgraph import attention
from nasgraph.flops import count_flops
from nasgraph.model import GraphModule, module_key
from nasgraph.ops.attention import normalize_candidate
from nasgraph.textfmt import scientific


@dataclass
class ChoicePoint:
    node: str
    granularity: str
    candidates: list[str]
    params: dict[str, int]          # the whole layer (all heads + out_proj) built as that candidate
    flops: dict[str, int]           # same, one forward at (1, max_len)
    head_flops: dict[str, int] = field(default_factory=dict)  # granularity head: one head of the type
    out_proj_flops: int = 0
    heads: int = 1                  # heads that choose independently (granularity head)

    @property
    def n_choices(self) -> int:
        return len(self.candidates) ** (self.heads if self.granularity == "head" else 1)

    def extreme(self, pick) -> int:
        if self.granularity == "layer":
            return pick(self.flops.values())
        return self.heads * pick(self.head_flops.values()) + self.out_proj_flops


@dataclass
class Summary:
    name: str
    nodes: int
    edges: int
    seq_len: int
    params_total: int               # the whole (super)net
    params_shared: int              # everything outside choice points
    flops_shared: int
    choice_points: list[ChoicePoint]

    @property
    def space_size(self) -> int:
        return math.prod(cp.n_choices for cp in self.choice_points)

    @property
    def flops_min(self) -> int:
        return self.flops_shared + sum(cp.extreme(min) for cp in self.choice_points)

    @property
    def flops_max(self) -> int:
        return self.flops_shared + sum(cp.extreme(max) for cp in self.choice_points)

    def to_json(self) -> dict:
        per_candidate: dict[str, int] = {}
        for cp in self.choice_points:
            per_candidate.update(cp.flops)
        return {
            "name": self.name, "nodes": self.nodes, "edges": self.edges, "seq_len": self.seq_len,
            "params": {"total": self.params_total, "shared": self.params_shared,
                       "per_choice": {cp.node: cp.params for cp in self.choice_points}},
            "flops": {"per_candidate": per_candidate, "shared": self.flops_shared, "min_arch": self.flops_min,
                      "max_arch": self.flops_max, "per_choice": {cp.node: cp.flops for cp in self.choice_points},
                      "per_head": {cp.node: cp.head_flops for cp in self.choice_points if cp.head_flops}},
            "choice_points": [{"node": cp.node, "granularity": cp.granularity, "candidates": cp.candidates,
                               "choices": cp.n_choices if cp.n_choices < 2 ** 63 else scientific(cp.n_choices)}
                              for cp in self.choice_points],
            "space_size": self.space_size if self.space_size < 2 ** 63 else scientific(self.space_size),
        }


def _dummy_inputs(shapes, T: int, ctx) -> tuple:
    out = []
    for s in shapes:
        if tuple(s) == ("B", "T"):
            out.append(torch.randint(2, ctx.vocab_size, (1, T)))                       # (1, T) tokens
        else:
            out.append(torch.randn(*[1 if d == "B" else T if d == "T" else d for d in s]))
    return tuple(out)


class _Counter:
    """FLOPs and params of attention candidates, cached by (label, heads, causal)."""

    def __init__(self, ctx, T: int):
        self.ctx, self.T, self.cache = ctx, T, {}

    def __call__(self, cand, n_heads: int, causal: bool, out_proj: bool) -> tuple[int, int]:
        name, options = normalize_candidate(cand)
        key = (name, tuple(sorted(options.items())), n_heads, causal, out_proj)
        if key not in self.cache:
            with torch.random.fork_rng():
                m = attention.build(name, self.ctx.d_model, n_heads, causal, self.ctx.max_len,
                                    head_dim=self.ctx.d_model // self.ctx.n_heads, out_proj=out_proj, **options)
                x = torch.randn(1, self.T, self.ctx.d_model)                           # (1, T, D)
            m.eval()
            fn = m if out_proj else _HeadsOnly(m)
            self.cache[key] = (count_flops(fn, (x,)).total, sum(p.numel() for p in m.parameters()))
        return self.cache[key]


class _HeadsOnly(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m.heads(x)


def summarize(graph: nx.DiGraph) -> Summary:
    """Count the graph's nodes, edges, parameters and FLOPs (see module doc)."""
    with torch.random.fork_rng():
        model = GraphModule(graph).eval()
    ctx, T = model.ctx, model.ctx.max_len
    count = _Counter(ctx, T)
    mixed = model.mixed_layers()
    choice_params = sum(p.numel() for m in mixed.values() for p in m.parameters())
    flops_shared, points, node_cache = 0, [], {}
    for n in model.order:
        node = graph.nodes[n]
        if n in mixed:
            params = graph.nodes[n]["params"]
            cands, causal = params["candidates"], params.get("causal", False)
            labels = node["candidates"]
            full = {l: count(c, ctx.n_heads, causal, True) for l, c in zip(labels, cands)}
            cp = ChoicePoint(n, node["granularity"], labels, {l: v[1] for l, v in full.items()},
                             {l: v[0] for l, v in full.items()})
            if cp.granularity == "head":
                cp.heads = ctx.n_heads
                cp.head_flops = {l: count(c, 1, causal, False)[0] for l, c in zip(labels, cands)}
                cp.out_proj_flops = T * ctx.d_model * ctx.d_model
            points.append(cp)
            continue
        key = (node["op"], repr(sorted(node["params"].items())), repr(node["in_shapes"]))
        if key not in node_cache:  # repeated layers cost the same: count each kind of node once
            with torch.no_grad():
                node_cache[key] = count_flops(model.nodes[module_key(n)], _dummy_inputs(node["in_shapes"], T, ctx)).total
        flops_shared += node_cache[key]
    total = sum(p.numel() for p in model.parameters())
    return Summary(graph.name, graph.number_of_nodes(), graph.number_of_edges(), T, total,
                   total - choice_params, flops_shared, points)
