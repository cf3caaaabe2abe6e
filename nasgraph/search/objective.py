"""The efficiency term of the search objective: expected cost of the architecture under the alphas.

Costs come from a CostTable: per choice point, the cost of each candidate (granularity layer: the
whole layer; granularity head: one head, plus the layer's shared out_proj). `from_summary` builds it
from the fvcore FLOP counts of `nasgraph compile`; a measured latency table plugs in the same way
(`CostTable(kind="latency", ...)`), which is the seam the deploy side uses.

Penalty shapes (ProxylessNAS / NNI style), with E the expected cost and R the reference
(target * largest architecture when a target is set, else the largest architecture):
    add: loss + weight * E / R            (with a target: loss + weight * relu(E / R - 1))
    mul: loss * (log E / log R) ** weight
"""
from __future__ import annotations

from dataclasses import dataclass, field

import math

import torch


@dataclass
class CostTable:
    kind: str                                   # "flops" or "latency"
    shared: float                               # cost outside the choice points
    per_node: dict[str, list[float]]            # node -> cost per candidate (layer) or per head (head)
    granularity: dict[str, str]
    heads: dict[str, int]
    fixed_per_node: dict[str, float] = field(default_factory=dict)  # head granularity: out_proj
    max_total: float = 0.0
    min_total: float = 0.0

    @classmethod
    def from_summary(cls, summary) -> "CostTable":
        per_node, gran, heads, fixed = {}, {}, {}, {}
        for cp in summary.choice_points:
            gran[cp.node], heads[cp.node] = cp.granularity, cp.heads
            if cp.granularity == "head":
                per_node[cp.node] = [float(cp.head_flops[l]) for l in cp.candidates]
                fixed[cp.node] = float(cp.out_proj_flops)
            else:
                per_node[cp.node] = [float(cp.flops[l]) for l in cp.candidates]
        return cls("flops", float(summary.flops_shared), per_node, gran, heads, fixed,
                   float(summary.flops_max), float(summary.flops_min))

    def expected(self, probs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Expected total cost; probs: node -> (G, C) candidate probabilities."""
        device = next(iter(probs.values())).device if probs else None
        total = torch.tensor(self.shared, device=device)
        for node, p in probs.items():
            cost = torch.tensor(self.per_node[node], dtype=p.dtype, device=p.device)     # (C,)
            total = total + (p * cost).sum() + self.fixed_per_node.get(node, 0.0)
        return total

    def of_choice(self, choice: dict[str, list[int]]) -> float:
        """Cost of a discrete architecture: node -> candidate index per group."""
        total = self.shared
        for node, idx in choice.items():
            total += sum(self.per_node[node][i] for i in idx) + self.fixed_per_node.get(node, 0.0)
        return total


def penalized(loss: torch.Tensor, expected: torch.Tensor, table: CostTable, weight: float, shape: str,
              target: float | None) -> torch.Tensor:
    """loss with the efficiency term applied (see the module doc)."""
    ref = table.max_total * (target if target else 1.0)
    if shape == "add":
        ratio = expected / ref
        return loss + weight * (torch.relu(ratio - 1.0) if target else ratio)
    return loss * (torch.log(expected) / math.log(ref)) ** weight
