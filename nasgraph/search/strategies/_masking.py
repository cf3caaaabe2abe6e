"""Unit masking shared by `fixed` (DARTFormer) and darts' perturbation selection.

A unit is (choice point, group, candidate); groups are the layer (granularity layer) or its heads.
`enabled` masks units out of the mix; `score` measures, for every unit of a group with more than one
left, the drop of the held-out metric when it alone is masked (minus the cost term's share).
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm


class UnitMasking:
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.enabled: dict[str, torch.Tensor] = {}      # node -> (G, C) bool
        self.scores: dict[str, list[list[float]]] = {}
        self.progress = True

    def attach(self, model) -> None:
        super().attach(model)
        self.enabled = {n: torch.ones_like(m.alpha, dtype=torch.bool) for n, m in model.mixed_layers().items()}

    def score(self, model, accuracy) -> dict[str, torch.Tensor]:
        """Metric drop per enabled unit in a group with more than one left (others: +inf)."""
        base = accuracy(model)
        scores = {n: torch.full(on.shape, float("inf"), device=on.device) for n, on in self.enabled.items()}
        units = [(n, g, c) for n, on in self.enabled.items()
                 for g, c in (on & (on.sum(-1, keepdim=True) > 1)).nonzero().tolist()]
        for node, g, c in tqdm(units, desc="scoring units", disable=not self.progress, leave=False):
            on = self.enabled[node]
            on[g, c] = False
            scores[node][g, c] = base - accuracy(model) - self._cost_share(node, c)
            on[g, c] = True
        self.scores = {n: s.tolist() for n, s in scores.items()}
        return scores

    def _cost_share(self, node: str, c: int) -> float:
        weight, _ = self.cost_term()
        if not weight:
            return 0.0
        return weight * self.cost.per_node[node][c] / self.cost.max_total  # subtracted: cheaper scores higher

    def state_dict(self) -> dict:
        return {**super().state_dict(), "enabled": {n: on.clone() for n, on in self.enabled.items()}}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for node, on in (state or {}).get("enabled", {}).items():   # on the alphas' device: a resumed run may move
            self.enabled[node] = on.to(self.enabled[node].device) if node in self.enabled else on
