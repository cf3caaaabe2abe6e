"""Per-token decode cost per attention candidate at a given context, for the search objective
`latency: {mode: decode, context: C}` (and `nasgraph bench --decode` on a spec's candidates).

A candidate's cost is the p50 latency of one decoding step of a standalone causal layer (spec d_model /
n_heads; a 1-head core for per-head choices) from its state after C tokens; the shared part is the
model outside its choice points run on one token (embedding, norms, FFNs, head are position-wise).
Both are measured in PyTorch eager (backend recorded in the cache key) and cached per machine in
the LatencyTable's file, so a second search on the same machine measures nothing.
"""
from __future__ import annotations

import torch

from exporters.latency import measure, torch_threads
from exporters.latency_table import LatencyTable, graph_key, latency_costs, shared_module
from nasgraph import attention
from nasgraph.errors import NasgraphError

BACKEND = "torch-eager"


def decode_ms(table: LatencyTable, candidate, *, d_model: int, n_heads: int, context: int,
              head_dim: int | None = None, heads_only: bool = False, batch: int = 1) -> float:
    """p50 ms of one decoding step of a standalone causal layer of `candidate` after `context` tokens."""
    from nasgraph.ops.attention import candidate_label, normalize_candidate

    name, options = normalize_candidate(candidate)
    cls = attention.get(name)
    if not (cls.caps.causal and cls.caps.decodable):
        raise NasgraphError(f"attention '{name}' has no decoding form: {cls.caps.decode_note or 'no causal form'}")
    ident = {"what": "decode", "backend": BACKEND, "candidate": candidate_label(name, options), "d_model": d_model,
             "n_heads": n_heads, "head_dim": head_dim or d_model // n_heads, "heads_only": heads_only}

    def compute():
        gen = torch.Generator().manual_seed(0)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            layer = attention.build(name, d_model, n_heads, True, context + 1 if cls.caps.bounded else None,
                                    head_dim=head_dim, out_proj=not heads_only, **options).eval()
        x_t = torch.randn(batch, d_model, generator=gen)                     # (B, D)
        with torch_threads(table.threads), torch.no_grad():
            _, state = layer.prefill_heads(torch.randn(batch, context, d_model, generator=gen))
            call = layer.step_heads if heads_only else layer.step
            return measure(lambda: call(x_t, state, context), warmup=table.warmup, repeats=table.repeats,
                           budget_s=table.budget_s)

    return table.cached_ms(ident, batch, context, compute)


def shared_token_ms(table: LatencyTable, graph, batch: int = 1) -> float:
    """p50 ms of the model outside its choice points on one token (its per-token decode cost)."""
    ctx = graph.graph["ctx"]

    def compute():
        module = shared_module(graph)
        tokens = torch.randint(2, ctx["vocab_size"], (batch, 1), generator=torch.Generator().manual_seed(0))
        with torch_threads(table.threads), torch.no_grad():
            return measure(lambda: module(tokens), warmup=table.warmup, repeats=table.repeats,
                           budget_s=table.budget_s)

    return table.cached_ms({"what": "shared-token", "backend": BACKEND, "graph": graph_key(graph)}, batch, 1,
                           compute)


def decode_cost_table(summary, graph, context: int, *, table: LatencyTable | None = None, batch: int = 1,
                      threads: int | None = None, progress: bool = False):
    """CostTable(kind="latency") of the per-token decode cost in microseconds after `context` tokens."""
    from tqdm import tqdm

    table = table or LatencyTable(threads=threads)
    ctx = graph.graph["ctx"]
    d_model, n_heads = ctx["d_model"], ctx["n_heads"]
    work = [(cp, c) for cp in summary.choice_points for c in graph.nodes[cp.node]["params"]["candidates"]]
    per_node: dict[str, list[float]] = {cp.node: [] for cp in summary.choice_points}
    for cp, cand in tqdm(work, desc=f"decode latency table (context {context})", disable=not progress, leave=False):
        head = cp.granularity == "head"
        ms = decode_ms(table, cand, d_model=d_model, n_heads=1 if head else n_heads, context=context,
                       head_dim=d_model // n_heads, heads_only=head, batch=batch)
        per_node[cp.node].append(ms * 1e3)
    return latency_costs(summary, per_node, shared_token_ms(table, graph, batch) * 1e3)
