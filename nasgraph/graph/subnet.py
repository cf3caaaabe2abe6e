"""Sub-networks of an elastic space (mixFormer): one value per elastic dimension, one FFN width and one
attention candidate per layer. The space itself is the compiled graph's `elastic` record.

    graph.graph["elastic"] = {"d_model": [64, 96, 128], "n_heads": [2, 4], "n_layers": [2, 4],
                              "ffn_mult": [[1, 2, 4], ...],      # per layer of the largest depth
                              "attention": [3, 3, 3, 3]}         # candidates per layer (1: fixed)
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import networkx as nx


@dataclass(frozen=True)
class SubNet:
    d_model: int
    n_heads: int
    ffn_mult: tuple[float, ...]        # one per layer: the depth is len(ffn_mult)
    attention: tuple[int, ...]         # candidate index per layer (0 where the layer has one)

    @property
    def n_layers(self) -> int:
        return len(self.ffn_mult)

    def to_json(self) -> dict:
        return {"d_model": self.d_model, "n_heads": self.n_heads, "n_layers": self.n_layers,
                "ffn_mult": list(self.ffn_mult), "attention": list(self.attention)}

    @classmethod
    def from_json(cls, data: dict) -> "SubNet":
        return cls(int(data["d_model"]), int(data["n_heads"]), tuple(float(m) for m in data["ffn_mult"]),
                   tuple(int(a) for a in data["attention"]))

    def label(self, candidates: list[list[str]] | None = None) -> str:
        """d96 h4 L2 ffn[2,4] att[softmax,linear] (candidate labels when given)."""
        att = [candidates[i][a] for i, a in enumerate(self.attention)] if candidates else list(self.attention)
        ffn = ",".join(f"{m:g}" for m in self.ffn_mult)
        return f"d{self.d_model} h{self.n_heads} L{self.n_layers} ffn[{ffn}] att[{','.join(map(str, att))}]"


def elastic(graph: nx.DiGraph) -> dict | None:
    """The graph's elastic record, or None for a graph without elastic dimensions."""
    return graph.graph.get("elastic")


def attention_candidates(graph: nx.DiGraph) -> list[list[str]]:
    """Candidate labels of each layer's attention, in layer order (the largest depth)."""
    return [graph.nodes[f"L{i}.attention"]["candidates"] for i in range(max(elastic(graph)["n_layers"]))]


def space_size(space: dict) -> int:
    """Sub-networks of the space: every depth with its own FFN widths and attention choices."""
    per_dims = len(space["d_model"]) * len(space["n_heads"])
    return per_dims * sum(math.prod(len(space["ffn_mult"][i]) * space["attention"][i] for i in range(k))
                          for k in space["n_layers"])


def largest(space: dict, attention: tuple[int, ...] | None = None) -> SubNet:
    k = max(space["n_layers"])
    return SubNet(max(space["d_model"]), max(space["n_heads"]), tuple(max(m) for m in space["ffn_mult"][:k]),
                  attention[:k] if attention else (0,) * k)


def smallest(space: dict, attention: tuple[int, ...] | None = None) -> SubNet:
    k = min(space["n_layers"])
    return SubNet(min(space["d_model"]), min(space["n_heads"]), tuple(min(m) for m in space["ffn_mult"][:k]),
                  attention[:k] if attention else (0,) * k)


def sample(space: dict, rng: random.Random, **fixed) -> SubNet:
    """A uniformly random sub-network (any field given in `fixed` is kept as given)."""
    k = fixed.get("n_layers") or rng.choice(space["n_layers"])
    return SubNet(fixed.get("d_model") or rng.choice(space["d_model"]),
                  fixed.get("n_heads") or rng.choice(space["n_heads"]),
                  tuple(rng.choice(space["ffn_mult"][i]) for i in range(k)),
                  fixed.get("attention", tuple(rng.randrange(space["attention"][i]) for i in range(k)))[:k])


def random_attention(space: dict, rng: random.Random) -> tuple[int, ...]:
    return tuple(rng.randrange(n) for n in space["attention"])


def mutate(sub: SubNet, space: dict, rng: random.Random, prob: float) -> SubNet:
    """Each gene (d_model, n_heads, depth, each layer's width and attention) resampled with `prob`."""
    pick = lambda old, options: rng.choice(options) if rng.random() < prob else old  # noqa: E731
    k = pick(sub.n_layers, space["n_layers"])
    ffn = [pick(sub.ffn_mult[i], space["ffn_mult"][i]) if i < sub.n_layers else rng.choice(space["ffn_mult"][i])
           for i in range(k)]
    att = [pick(sub.attention[i], list(range(space["attention"][i]))) if i < sub.n_layers
           else rng.randrange(space["attention"][i]) for i in range(k)]
    return SubNet(pick(sub.d_model, space["d_model"]), pick(sub.n_heads, space["n_heads"]), tuple(ffn), tuple(att))


def crossover(a: SubNet, b: SubNet, rng: random.Random) -> SubNet:
    """Each gene from either parent; the depth from one of them (layers past the other's from that one)."""
    k = rng.choice([a.n_layers, b.n_layers])
    parent = lambda i: rng.choice([p for p in (a, b) if i < p.n_layers])  # noqa: E731
    return SubNet(rng.choice([a.d_model, b.d_model]), rng.choice([a.n_heads, b.n_heads]),
                  tuple(parent(i).ffn_mult[i] for i in range(k)), tuple(parent(i).attention[i] for i in range(k)))
