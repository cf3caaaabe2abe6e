"""Per-token decode cost per attention candidate at a given context, for the search objective
`latency: {mode: decode, context: C}` (and `nasgraph bench --decode` on a spec's candidates).

A candidate's cost is the p50 latency of one decoding step of a standalone causal layer (spec d_model /
n_heads; a 1-head core for per-head choices) from its state after C tokens; the shared part is the
model outside its choice points run on one token (embedding, norms, FFNs, head are position-wise).
Backends (recorded in the cache key): "onnxruntime" (default: the engine a user deploys, as for the
full-forward latency table): the layer's decoding step exported as a graph (x_t, position, state ->
y_t, new state; the KV cache axis dynamic) and the shared part exported on one token, timed in an
ONNX Runtime session; "torch-eager": `layer.step` and the shared module in PyTorch. Cached per
machine in the LatencyTable's file, so a second search on the same machine measures nothing.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from exporters.latency import measure, torch_threads
from exporters.latency_table import LatencyTable, graph_key, latency_costs, shared_module
from nasgraph import attention
from nasgraph.errors import NasgraphError

EAGER, ORT = "torch-eager", "onnxruntime"
BACKENDS = (ORT, EAGER)


class LayerStep(nn.Module):
    """(x_t (B, D), position (), *state) -> (y_t (B, D) or heads (B, H, dh), *new state): one decoding step."""

    def __init__(self, layer: nn.Module, heads_only: bool):
        super().__init__()
        self.layer, self.heads_only = layer, heads_only

    def forward(self, x_t: torch.Tensor, position: torch.Tensor, *state: torch.Tensor):
        call = self.layer.step_heads if self.heads_only else self.layer.step
        y, new = call(x_t, state, position)                                  # (B, D) | (B, H, dh)
        return (y, *new)


def step_inputs(layer: nn.Module, batch: int, context: int, d_model: int) -> tuple[torch.Tensor, ...]:
    """(x_t (B, D), position (), *the layer's state after `context` random tokens), seeded."""
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn(batch, d_model, generator=gen)                         # (B, D)
    with torch.no_grad():
        _, state = layer.prefill_heads(torch.randn(batch, context, d_model, generator=gen))
    return (x_t, torch.tensor(context, dtype=torch.int64), *state)


def export_step(layer: nn.Module, heads_only: bool, example: tuple[torch.Tensor, ...], path: Path) -> Path:
    """The layer's decoding step as an ONNX graph: inputs x_t, position, state_0..; the KV cache axes
    ("S" in state_shapes) dynamic, traced at the example's context."""
    from exporters.onnx_export import export_onnx

    shapes = [shape for _, shape in layer.state_shapes(example[0].shape[0])]
    names = ["x_t", "position", *(f"state_{i}" for i in range(len(shapes)))]
    axes = {f"state_{i}": {a: "cache" for a, d in enumerate(shape) if d == "S"} for i, shape in enumerate(shapes)}
    return export_onnx(LayerStep(layer, heads_only), example, path, input_names=names,
                       dynamic_axes={k: v for k, v in axes.items() if v}, overwrite=True, fallback=False)


def checked_step(layer: nn.Module, heads_only: bool, example: tuple[torch.Tensor, ...], path: Path,
                 atol: float = 1e-4) -> Path:
    """export_step, then ONNX Runtime's step from the example state against eager's (ParityError)."""
    import numpy as np

    from exporters.errors import ParityError
    from exporters.runtime import make_session

    export_step(layer, heads_only, example, path)
    session = make_session(path, threads=1)
    got = session.run(None, {i.name: t.numpy() for i, t in zip(session.get_inputs(), example)})
    with torch.no_grad():
        want = LayerStep(layer, heads_only)(*example)
    worst = max(float(np.abs(g - w.numpy()).max(initial=0.0)) for g, w in zip(got, want, strict=True))
    if not worst <= atol:
        raise ParityError(f"decode step of {layer.name}: ONNX Runtime differs from eager by {worst:.3g} (atol {atol:g})")
    return path


def decode_ms(table: LatencyTable, candidate, *, d_model: int, n_heads: int, context: int,
              head_dim: int | None = None, heads_only: bool = False, batch: int = 1, backend: str = ORT) -> float:
    """p50 ms of one decoding step of a standalone causal layer of `candidate` after `context` tokens."""
    from nasgraph.ops.attention import candidate_label, normalize_candidate

    if backend not in BACKENDS:
        raise NasgraphError(f"unknown decode latency backend '{backend}'; valid: {', '.join(BACKENDS)}")
    name, options = normalize_candidate(candidate)
    cls = attention.get(name)
    if not (cls.caps.causal and cls.caps.decodable):
        raise NasgraphError(f"attention '{name}' has no decoding form: {cls.caps.decode_note or 'no causal form'}")
    ident = {"what": "decode", "backend": backend, "candidate": candidate_label(name, options), "d_model": d_model,
             "n_heads": n_heads, "head_dim": head_dim or d_model // n_heads, "heads_only": heads_only}

    def build():
        with torch.random.fork_rng():
            torch.manual_seed(0)
            return attention.build(name, d_model, n_heads, True, context + 1 if cls.caps.bounded else None,
                                   head_dim=head_dim, out_proj=not heads_only, **options).eval()

    if backend == ORT:
        layer = build()
        example = step_inputs(layer, batch, context, d_model)
        names = ["x_t", "position", *(f"state_{i}" for i in range(len(example) - 2))]
        feeds = lambda B, T: {n: t.numpy() for n, t in zip(names, step_inputs(layer, B, T, d_model))}  # noqa: E731
        return table.measure(ident, lambda: (layer, lambda p: checked_step(layer, heads_only, example, p)),
                             feeds, [context], batch)[context]

    def compute():
        layer = build()
        x_t, position, *state = step_inputs(layer, batch, context, d_model)
        with torch_threads(table.threads), torch.no_grad():
            call = layer.step_heads if heads_only else layer.step
            return measure(lambda: call(x_t, tuple(state), context), warmup=table.warmup, repeats=table.repeats,
                           budget_s=table.budget_s)

    return table.cached_ms(ident, batch, context, compute)


def shared_token_ms(table: LatencyTable, graph, batch: int = 1, backend: str = ORT) -> float:
    """p50 ms of the model outside its choice points on one token (its per-token decode cost)."""
    if backend == ORT:
        return table.shared_ms(graph, [1], batch)[1]
    ctx = graph.graph["ctx"]

    def compute():
        module = shared_module(graph)
        tokens = torch.randint(2, ctx["vocab_size"], (batch, 1), generator=torch.Generator().manual_seed(0))
        with torch_threads(table.threads), torch.no_grad():
            return measure(lambda: module(tokens), warmup=table.warmup, repeats=table.repeats,
                           budget_s=table.budget_s)

    return table.cached_ms({"what": "shared-token", "backend": EAGER, "graph": graph_key(graph)}, batch, 1,
                           compute)


def decode_cost_table(summary, graph, context: int, *, table: LatencyTable | None = None, batch: int = 1,
                      threads: int | None = None, progress: bool = False, backend: str = ORT):
    """CostTable(kind="latency") of the per-token decode cost in microseconds after `context` tokens,
    measured on `backend` ("onnxruntime" or "torch-eager")."""
    from tqdm import tqdm

    table = table or LatencyTable(threads=threads)
    ctx = graph.graph["ctx"]
    d_model, n_heads = ctx["d_model"], ctx["n_heads"]
    work = [(cp, c) for cp in summary.choice_points for c in graph.nodes[cp.node]["params"]["candidates"]]
    per_node: dict[str, list[float]] = {cp.node: [] for cp in summary.choice_points}
    for cp, cand in tqdm(work, desc=f"decode latency table (context {context})", disable=not progress, leave=False):
        head = cp.granularity == "head"
        ms = decode_ms(table, cand, d_model=d_model, n_heads=1 if head else n_heads, context=context,
                       head_dim=d_model // n_heads, heads_only=head, batch=batch, backend=backend)
        per_node[cp.node].append(ms * 1e3)
    return latency_costs(summary, per_node, shared_token_ms(table, graph, batch, backend) * 1e3)
