"""DARTFormer (fixed-alpha): candidates averaged with fixed equal weights; after training, each
candidate unit is scored by the accuracy drop when it alone is masked out.

A unit is (choice point, group, candidate); groups are the layer (granularity layer) or its heads
(granularity head). Derive rules:
  top1  - each choice point keeps its best candidate for all its heads (homogeneous layer);
  topk  - each point keeps its k best candidates and each head takes its best unit among them;
  prune - repeatedly drop the worst unit of every group with more than one left, fine-tune, rescore.
"""
from __future__ import annotations

import torch

from nasgraph.errors import ConfigError
from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import register


@register("fixed")
class Fixed(Strategy):
    has_arch_step = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enabled: dict[str, torch.Tensor] = {}      # node -> (G, C) bool
        self.scores: dict[str, list[list[float]]] = {}

    def attach(self, model) -> None:
        super().attach(model)
        self.enabled = {n: torch.ones_like(m.alpha, dtype=torch.bool) for n, m in model.mixed_layers().items()}

    def __call__(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        on = self.enabled.get(node, torch.ones_like(alpha, dtype=torch.bool)).to(alpha.dtype)  # (G, C)
        return on / on.sum(-1, keepdim=True).clamp_min(1.0)                                     # equal weights

    def probabilities(self, model) -> dict[str, torch.Tensor]:
        return {n: self(m.alpha, n) for n, m in model.mixed_layers().items()}

    # -- scoring -------------------------------------------------------------------------------------
    def score(self, model, accuracy) -> dict[str, torch.Tensor]:
        """Accuracy drop per enabled unit in a group with more than one left (others: +inf)."""
        base = accuracy(model)
        scores = {}
        for node, on in self.enabled.items():
            s = torch.full(on.shape, float("inf"))
            for g, c in (on & (on.sum(-1, keepdim=True) > 1)).nonzero().tolist():
                on[g, c] = False
                s[g, c] = base - accuracy(model) - self._cost_term(node, c)
                on[g, c] = True
            scores[node] = s
        self.scores = {n: s.tolist() for n, s in scores.items()}
        return scores

    def _cost_term(self, node: str, c: int) -> float:
        term = self.search.objective.latency or self.search.objective.flops
        if term is None or self.cost is None:
            return 0.0
        return -term.weight * self.cost.per_node[node][c] / self.cost.max_total  # cheaper = higher score

    def choose(self, model, accuracy=None, finetune=None, **_) -> dict[str, list[int]]:
        rule, k = self.search.derive, self.search.topk
        if rule == "prune":
            while any((on.sum(-1) > 1).any() for on in self.enabled.values()):
                for node, s in self.score(model, accuracy).items():
                    on = self.enabled[node]
                    for g in range(on.shape[0]):
                        if on[g].sum() > 1:
                            on[g, int(torch.where(on[g], s[g], torch.inf).argmin())] = False
                if finetune is not None and self.search.finetune_steps:
                    finetune(model, self.search.finetune_steps)
            return {n: on.float().argmax(-1).tolist() for n, on in self.enabled.items()}
        scores = self.score(model, accuracy)
        choice = {}
        for node, s in scores.items():
            total = torch.nan_to_num(s, posinf=0.0).sum(0)                  # (C,) summed over groups
            if rule == "top1" or s.shape[0] == 1:
                if rule == "topk" and k > 1:
                    raise ConfigError(f"search.derive topk with topk={k} needs granularity head at '{node}'")
                choice[node] = [int(total.argmax())] * s.shape[0]
                continue
            if k > s.shape[1]:
                raise ConfigError(f"search.topk {k} exceeds the {s.shape[1]} candidates at '{node}'")
            keep = total.topk(k).indices                                     # (k,)
            choice[node] = [int(keep[s[g, keep].argmax()]) for g in range(s.shape[0])]
        return choice

    def snapshot(self, model) -> dict:
        return {"probs": {n: p.tolist() for n, p in self.probabilities(model).items()}}

    def state_dict(self) -> dict:
        return {"enabled": {n: on.clone() for n, on in self.enabled.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.enabled.update(state.get("enabled", {}))
