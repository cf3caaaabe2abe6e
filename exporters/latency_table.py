"""Measured ONNX Runtime latency per attention candidate and sequence length, cached per machine.

`LatencyTable` exports a standalone module (an attention layer of the spec's d_model / n_heads, a
1-head module for per-head choices, or the model's shared part), times it with ONNX Runtime at each
requested (batch, seq_len), and keeps the p50 in one JSON file per hardware fingerprint:
`~/.cache/nasgraph/latency/<fingerprint>.json` (root overridable with $NASGRAPH_CACHE). Entries are
keyed by candidate, shape and run settings, so a second search on the same machine measures nothing.

`latency_cost_table(summary, graph)` turns it into the search objective's CostTable(kind="latency"),
in microseconds: per choice point, a whole layer per candidate (granularity layer) or one head per
candidate (granularity head; the layer's out_proj is measured inside the shared part).

Example:
    >>> table = LatencyTable(threads=2)
    >>> table.attention_ms("softmax", d_model=64, n_heads=4, seq_lens=[128, 512])
    {128: 0.21, 512: 1.02}
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from exporters.latency import env_fingerprint, ort_latency
from exporters.onnx_export import batch_seq_axes, export_onnx
from exporters.runtime import make_session
from nasgraph.outfile import atomic_write
from nasgraph.threads import available_cores

EXPORT_T = 8  # sequence length traced at export (the axis stays dynamic)


def cache_root() -> Path:
    """$NASGRAPH_CACHE, else ~/.cache/nasgraph."""
    return Path(os.environ.get("NASGRAPH_CACHE") or Path.home() / ".cache" / "nasgraph").expanduser()


def usable_cores() -> int:
    return available_cores()


# -- standalone modules --------------------------------------------------------------------------
class HeadsOnly(nn.Module):
    """An attention's per-head core without out_proj: (x, mask) -> (B, T, H, dh)."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.attn.check_length(x.shape[1])
        return self.attn.heads(x, mask)                                   # (B, T, H, dh)


def attention_module(candidate, d_model: int, n_heads: int, *, causal: bool = False,
                     max_len: int | None = None, head_dim: int | None = None,
                     heads_only: bool = False) -> nn.Module:
    """A standalone attention layer (x, mask) -> (B, T, D) of a spec candidate ("softmax" or {local: {...}})."""
    from nasgraph import attention
    from nasgraph.ops.attention import normalize_candidate

    name, options = normalize_candidate(candidate)
    bounded = attention.get(name).caps.bounded
    attn = attention.build(name, d_model, n_heads, causal, max_len if bounded else None, head_dim=head_dim,
                           out_proj=not heads_only, **options)
    return (HeadsOnly(attn) if heads_only else attn).eval()


def is_bounded(candidate) -> bool:
    from nasgraph import attention
    from nasgraph.ops.attention import normalize_candidate

    return attention.get(normalize_candidate(candidate)[0]).caps.bounded


def export_layer(module: nn.Module, path: Path, d_model: int, max_len: int | None) -> Path:
    """Export (x (B, T, D), mask (B, T)) -> y with dynamic batch and sequence (bounded by max_len)."""
    T = min(EXPORT_T, max_len) if max_len else EXPORT_T
    x, mask = torch.randn(2, T, d_model), torch.ones(2, T, dtype=torch.bool)   # (2, T, D), (2, T)
    return export_onnx(module, (x, mask), path, input_names=["x", "mask"], output_names=["y"],
                       dynamic_axes=batch_seq_axes("x", "mask"), axis_max={"seq": max_len} if max_len else None,
                       overwrite=True, fallback=False)


def layer_feeds(d_model: int) -> Callable[[int, int], dict[str, Any]]:
    gen = torch.Generator().manual_seed(0)
    return lambda B, T: {"x": torch.randn(B, T, d_model, generator=gen).numpy(),       # (B, T, D)
                         "mask": torch.ones(B, T, dtype=torch.bool).numpy()}            # (B, T)


class _Pass(nn.Module):
    """Stands in for a choice point in the shared-part model: identity, or just the layer's out_proj."""

    def __init__(self, d_model: int, out_proj: bool):
        super().__init__()
        self.proj = nn.Linear(d_model, d_model) if out_proj else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return x if self.proj is None else self.proj(x)                   # (B, T, D)


class _Tokens(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)                                         # (B, C)


def shared_module(graph) -> nn.Module:
    """The model with every choice point removed (granularity head keeps its out_proj): tokens -> logits."""
    from nasgraph.model import GraphModule, module_key

    with torch.random.fork_rng():
        model = GraphModule(graph).eval()
    for node in model.mixed_layers():
        model.nodes[module_key(node)].inner = _Pass(model.ctx.d_model, graph.nodes[node]["granularity"] == "head")
    return _Tokens(model).eval()


def graph_key(graph) -> str:
    """A stable hash of the graph outside its choice points (ops, params, wiring, model context)."""
    parts = [graph.graph["ctx"]]
    for n, d in sorted(graph.nodes(data=True)):
        if d.get("choice"):
            parts.append([n, "choice", d.get("granularity"), list(d.get("inputs", []))])
        elif "op" in d:
            parts.append([n, d["op"], d.get("params"), list(d.get("inputs", []))])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the cached table ----------------------------------------------------------------------------
class LatencyTable:
    """ONNX Runtime p50 latencies (ms) of standalone modules, cached on disk per machine fingerprint."""

    def __init__(self, path: str | Path | None = None, *, provider: str = "cpu", threads: int | None = None,
                 graph_opt: str = "all", warmup: int = 5, repeats: int = 30, budget_s: float = 2.0):
        self.env = env_fingerprint(provider)
        self.path = Path(path) if path else cache_root() / "latency" / f"{self.env['hash']}.json"
        self.provider, self.threads, self.graph_opt = provider, threads or usable_cores(), graph_opt
        self.warmup, self.repeats, self.budget_s = warmup, repeats, budget_s
        self.hits = self.misses = 0

    def key(self, ident: dict, batch: int, seq_len: int) -> str:
        return json.dumps({**ident, "batch": batch, "seq_len": seq_len, "threads": self.threads,
                           "graph_opt": self.graph_opt, "provider": self.provider}, sort_keys=True)

    def load(self) -> dict[str, dict]:
        if not self.path.exists():
            return {}
        try:
            return json.loads(self.path.read_text()).get("entries", {})
        except (json.JSONDecodeError, OSError):
            return {}  # a damaged cache is re-measured, not trusted

    def measure(self, ident: dict, make: Callable[[], tuple[nn.Module, Callable[[Path], Path]]],
                feeds: Callable[[int, int], dict[str, Any]], seq_lens: Sequence[int],
                batch: int = 1) -> dict[int, float]:
        """p50 ms per seq_len of the module `make()` builds; only uncached lengths are measured.

        make() -> (module, export(path) -> path); feeds(B, T) -> input arrays by name.
        """
        cached = self.load()
        out = {T: cached[k]["p50_ms"] for T in seq_lens if (k := self.key(ident, batch, T)) in cached}
        self.hits += len(out)
        todo = [T for T in seq_lens if T not in out]
        if not todo:
            return {T: out[T] for T in seq_lens}
        self.misses += len(todo)
        new = {}
        with tempfile.TemporaryDirectory(prefix="nasgraph-latency-") as tmp:
            module, export = make()
            path = export(Path(tmp) / "module.onnx")
            session = make_session(path, self.provider, threads=self.threads, graph_opt=self.graph_opt)
            names = {i.name for i in session.get_inputs()}
            for T in todo:
                arrays = {k: v for k, v in feeds(batch, T).items() if k in names}
                r = ort_latency(session, arrays, warmup=self.warmup, repeats=self.repeats, budget_s=self.budget_s)
                out[T] = r.stats.p50_ms
                new[self.key(ident, batch, T)] = {"p50_ms": r.stats.p50_ms, "p90_ms": r.stats.p90_ms,
                                                  "repeats": r.stats.repeats, "measured": time.strftime("%F %T")}
        self._store(new)
        return {T: out[T] for T in seq_lens}

    def cached_ms(self, ident: dict, batch: int, seq_len: int, compute: Callable[[], Any]) -> float:
        """The cached p50 ms of (ident, batch, seq_len), else compute() -> LatencyStats, stored.

        For measurements that are not an ONNX Runtime session (ident names their backend)."""
        key = self.key(ident, batch, seq_len)
        cached = self.load()
        if key in cached:
            self.hits += 1
            return cached[key]["p50_ms"]
        self.misses += 1
        stats = compute()
        self._store({key: {"p50_ms": stats.p50_ms, "p90_ms": stats.p90_ms, "repeats": stats.repeats,
                           "measured": time.strftime("%F %T")}})
        return stats.p50_ms

    def attention_ms(self, candidate, *, d_model: int, n_heads: int, seq_lens: Sequence[int], causal: bool = False,
                     max_len: int | None = None, head_dim: int | None = None, heads_only: bool = False,
                     batch: int = 1) -> dict[int, float]:
        """p50 ms of a standalone attention layer (or, heads_only, its heads without out_proj)."""
        from nasgraph.ops.attention import candidate_label, normalize_candidate

        bound = max_len if is_bounded(candidate) else None
        if bound is not None and max(seq_lens) > bound:
            from nasgraph.errors import SequenceTooLongError
            raise SequenceTooLongError(f"{candidate!r}: sequence length {max(seq_lens)} exceeds max_len {bound}")
        ident = {"what": "attention", "candidate": candidate_label(*normalize_candidate(candidate)),
                 "d_model": d_model, "n_heads": n_heads, "head_dim": head_dim or d_model // n_heads,
                 "causal": causal, "max_len": bound, "heads_only": heads_only}

        def make():
            m = attention_module(candidate, d_model, n_heads, causal=causal, max_len=bound, head_dim=head_dim,
                                 heads_only=heads_only)
            return m, lambda p: export_layer(m, p, d_model, bound)

        return self.measure(ident, make, layer_feeds(d_model), seq_lens, batch)

    def shared_ms(self, graph, seq_lens: Sequence[int], batch: int = 1) -> dict[int, float]:
        """p50 ms of the model outside its choice points (see shared_module)."""
        ctx = graph.graph["ctx"]
        gen = torch.Generator().manual_seed(0)

        def make():
            m = shared_module(graph)
            tokens = torch.randint(2, ctx["vocab_size"], (2, min(EXPORT_T, ctx["max_len"])), generator=gen)
            return m, lambda p: export_onnx(m, (tokens,), p, input_names=["tokens"], output_names=["logits"],
                                            dynamic_axes={"tokens": {0: "batch", 1: "seq"}},
                                            axis_max={"seq": ctx["max_len"]}, overwrite=True, fallback=False)

        feeds = lambda B, T: {"tokens": torch.randint(2, ctx["vocab_size"], (B, T), generator=gen).numpy()}  # noqa: E731
        return self.measure({"what": "shared", "graph": graph_key(graph)}, make, feeds, seq_lens, batch)

    def _store(self, entries: dict[str, dict]) -> None:
        """Merge `entries` into the file under a lock (parallel searches share it), atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.path.with_name(self.path.name + ".lock")):
            merged = {**self.load(), **entries}
            data = {"fingerprint": self.env, "entries": merged}
            atomic_write(self.path, lambda fh: fh.write(json.dumps(data, indent=1, sort_keys=True).encode()))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def latency_cost_table(summary, graph, *, table: LatencyTable | None = None, seq_len: int | None = None,
                       batch: int = 1, threads: int | None = None, progress: bool = False):
    """CostTable(kind="latency") in microseconds at (batch, seq_len = summary.seq_len by default)."""
    from tqdm import tqdm

    table = table or LatencyTable(threads=threads)
    T, ctx = seq_len or summary.seq_len, graph.graph["ctx"]
    d_model, n_heads = ctx["d_model"], ctx["n_heads"]
    work = [(cp, c) for cp in summary.choice_points for c in graph.nodes[cp.node]["params"]["candidates"]]
    per_node: dict[str, list[float]] = {cp.node: [] for cp in summary.choice_points}
    for cp, cand in tqdm(work, desc="latency table", disable=not progress, leave=False):
        causal = graph.nodes[cp.node]["params"].get("causal", False)
        head = cp.granularity == "head"
        ms = table.attention_ms(cand, d_model=d_model, n_heads=1 if head else n_heads, seq_lens=[T],
                                causal=causal, max_len=ctx["max_len"], head_dim=d_model // n_heads,
                                heads_only=head, batch=batch)[T]
        per_node[cp.node].append(ms * 1e3)
    return latency_costs(summary, per_node, table.shared_ms(graph, [T], batch)[T] * 1e3)


def latency_costs(summary, per_node: dict[str, list[float]], shared: float):
    """CostTable(kind="latency") from per-candidate costs (per head for head granularity) and the shared part."""
    from nasgraph.search.objective import CostTable

    gran = {cp.node: cp.granularity for cp in summary.choice_points}
    heads = {cp.node: cp.heads for cp in summary.choice_points}
    groups = {n: heads[n] if gran[n] == "head" else 1 for n in per_node}
    return CostTable("latency", shared, per_node, gran, heads, {},
                     shared + sum(groups[n] * max(v) for n, v in per_node.items()),
                     shared + sum(groups[n] * min(v) for n, v in per_node.items()))
