"""What a compiled graph would cost, estimated before anything is allocated, and the refusal of specs
past the machine or nasgraph's documented limits (nasgraph.spec.limits).

Each node is built on PyTorch's meta device (shapes only, no memory): the parameter count is exact.
Each distinct node then runs once on meta tensors at batch 1 with autograd on (nasgraph.graph.
meta_probe): the bytes autograd saves for backward (what training keeps), the largest tensor the
forward creates (transient working memory) and its FLOPs (1 multiply-add = 1 FLOP, as nasgraph.flops).
Lengths past PROBE_LEN are probed at PROBE_LEN / 2 and PROBE_LEN and extrapolated with the measured
growth exponent (clamped to [1, 2]). Training is priced as weights + gradients + two Adam moments
(16 bytes per parameter) plus batch_size x activations, plus the generated examples.
"""
from __future__ import annotations

import os
import resource
from dataclasses import dataclass, field

import networkx as nx
import torch

from nasgraph import ops
from nasgraph.graph.expand import INPUT
from nasgraph.graph.meta_probe import MetaInit, MixedForward, cost_at_length
from nasgraph.ops.base import ModelContext
from nasgraph.ops.mixed_attention import MixedAttention
from nasgraph.spec.limits import MAX_EXAMPLES, MAX_FORWARD_FLOPS
from nasgraph.textfmt import human, scientific

BYTES_PER_PARAM_TRAINING = 16          # fp32 weight, gradient, Adam m and v
BYTES_PER_TOKEN_IN_MEMORY = 8          # a token id in a Python list (small ints are shared)
BYTES_PER_EXAMPLE = 120                # list headers and the label


@dataclass
class NodeCost:
    params: int = 0
    act_bytes: int = 0       # per sequence, at max_len: kept for backward
    flops: int = 0           # per sequence, at max_len
    largest: int = 0         # per sequence: the largest tensor its forward creates


@dataclass
class Estimate:
    """One model's cost at task.max_len: parameters, activation bytes and forward FLOPs per sequence."""

    seq_len: int
    nodes: dict[str, NodeCost] = field(default_factory=dict)
    examples: int = 0

    @property
    def params(self) -> int:
        return sum(c.params for c in self.nodes.values())

    @property
    def act_bytes(self) -> int:
        """Kept for backward over the whole graph, plus the largest transient tensor."""
        return sum(c.act_bytes for c in self.nodes.values()) + max((c.largest for c in self.nodes.values()), default=0)

    @property
    def flops(self) -> int:
        return sum(c.flops for c in self.nodes.values())

    def training_bytes(self, batch_size: int) -> dict[str, int]:
        """Bytes a training (or search) run holds: {'weights': ..., 'activations': ..., 'data': ...}."""
        return {"weights": BYTES_PER_PARAM_TRAINING * self.params, "activations": batch_size * self.act_bytes,
                "data": self.examples * (BYTES_PER_EXAMPLE + BYTES_PER_TOKEN_IN_MEMORY * self.seq_len)}


class Unsizable(ValueError):
    """Torch cannot even size a node (a dimension past 64 bits): `node` names it."""

    def __init__(self, node: str, err: Exception):
        self.node = node
        super().__init__(str(err).splitlines()[0][:160] if str(err) else type(err).__name__)


def estimate(graph: nx.DiGraph) -> Estimate:
    """Cost of the compiled `graph` (see module doc). Unsizable names the node torch cannot size."""
    ctx = ModelContext(**graph.graph["ctx"])
    est, cache = Estimate(ctx.max_len), {}
    for n in nx.topological_sort(graph):
        if n == INPUT:
            continue
        try:
            est.nodes[n] = _node_cost(graph.nodes[n], ctx, cache)
        except (RuntimeError, ValueError, TypeError, OverflowError, MemoryError) as err:  # sizes past int64
            raise Unsizable(n, err) from None
    return est


def _node_cost(node: dict, ctx: ModelContext, cache: dict) -> NodeCost:
    """Parameters (exact, from a meta build) and per-sequence bytes and FLOPs of one node."""
    with MetaInit(), torch.device("meta"):
        module = ops.get(node["op"])(ops.parse_options(node["op"], node["params"]), ctx)
    shapes = node["in_shapes"]

    def inputs_at(t):
        return tuple(torch.zeros(1, t, dtype=torch.long, device="meta") if tuple(s) == ("B", "T") else
                     torch.zeros(*[1 if d == "B" else t if d == "T" else d for d in s], device="meta")
                     for s in shapes)

    def mask_at(t):
        return torch.ones(1, t, dtype=torch.bool, device="meta")                 # (1, t)

    key = (node["op"], repr(node["params"]), repr(shapes))
    if key not in cache:   # repeated layers cost the same: probe each kind of node once
        inner = getattr(module, "inner", None)
        run = MixedForward(inner) if isinstance(inner, MixedAttention) else module
        cache[key] = cost_at_length(run, inputs_at, mask_at, ctx.max_len)
    act, largest, flops = cache[key]
    return NodeCost(sum(p.numel() for p in module.parameters()), act, flops, largest)


def available_memory() -> int:
    """Bytes this process may still use: free RAM, and the address-space and data limits when set."""
    limits = [_mem_available()]
    used = _vm_size()
    for which in (resource.RLIMIT_AS, resource.RLIMIT_DATA):
        soft, _ = resource.getrlimit(which)
        if soft != resource.RLIM_INFINITY:
            limits.append(max(0, soft - used))
    return min(x for x in limits if x is not None)


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _vm_size() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_resources(doc, graph: nx.DiGraph) -> Estimate:
    """SpecError (with the estimate and the key to change) when the spec is past the machine or a
    documented limit; the Estimate otherwise. `--force` skips this check."""
    from nasgraph import tasks

    task = tasks.parse_task(doc.spec.task)
    examples = sum(getattr(task, f"n_{s}", 0) or 0 for s in ("train", "val", "test"))
    if examples > MAX_EXAMPLES:
        raise doc.error(f"{examples:,} examples to generate, past nasgraph's limit of {MAX_EXAMPLES:,} "
                        f"(docs/spec.md, Limits; --force lifts it)", ("task", "n_train"))
    try:
        est = estimate(graph)
    except Unsizable as err:
        raise doc.error(f"'{err.node}' is too large to be sized ({err}); use smaller dimensions",
                        graph.nodes[err.node]["path"]) from None
    est.examples = examples
    T = est.seq_len
    if est.flops > MAX_FORWARD_FLOPS:
        worst = max(est.nodes, key=lambda n: est.nodes[n].flops)
        raise doc.error(f"one forward pass of one sequence at T={T} costs about {scientific(est.flops)} FLOPs "
                        f"({scientific(est.nodes[worst].flops)} in '{worst}'), past nasgraph's limit of "
                        f"{scientific(MAX_FORWARD_FLOPS)} (docs/spec.md, Limits; --force lifts it)",
                        graph.nodes[worst]["path"])
    batch = doc.spec.train.batch_size
    need = est.training_bytes(batch)
    free = available_memory()
    if sum(need.values()) > free:
        raise doc.error(f"training needs about {_gb(sum(need.values()))} ({human(est.params)} parameters: "
                        f"{_gb(need['weights'])} with gradients and Adam state; activations "
                        f"{_gb(need['activations'])} at batch {batch} x T={T}; data {_gb(need['data'])}), "
                        f"more than the {_gb(free)} available; shrink it or pass --force",
                        _blame(doc, graph, est, need))
    return est


def _blame(doc, graph: nx.DiGraph, est: Estimate, need: dict[str, int]):
    part = max(need, key=need.get)
    if part == "data":
        return ("task", "n_train")
    if part == "activations" and "batch_size" in (doc.raw.get("train") or {}):
        return ("train", "batch_size")
    worst = max((n for n in est.nodes if n != INPUT),
                key=lambda n: est.nodes[n].params if part == "weights" else est.nodes[n].act_bytes)
    return graph.nodes[worst]["path"]


def _gb(n: int) -> str:
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"
