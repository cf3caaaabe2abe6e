"""GDAS: Gumbel-softmax hard sampling with a temperature schedule; only sampled candidates run."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveFloat

from nasgraph.search.strategies._supernet import AlphaConfig, SupernetStrategy
from nasgraph.search.strategies.registry import register


class GdasConfig(AlphaConfig):
    tau: tuple[PositiveFloat, PositiveFloat] = (10.0, 0.1)   # Gumbel temperature, linear from -> to


@register("gdas")
class Gdas(SupernetStrategy):
    Config = GdasConfig
    skips_candidates = True      # a step runs only the sampled candidates (DDP: find_unused_parameters)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tau = self.config.tau[0]

    def before_step(self, step: int, total: int, epoch: float) -> None:
        start, end = self.config.tau
        self.tau = start - (start - end) * step / max(1, total - 1)   # linear, as in GDAS

    def mix(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        if not torch.is_grad_enabled():          # evaluation: the current argmax architecture
            return F.one_hot(alpha.argmax(-1), alpha.shape[-1]).to(alpha.dtype)
        return F.gumbel_softmax(alpha, tau=self.tau, hard=True, dim=-1)   # (G, C), one-hot, straight-through

    def metrics(self, model) -> dict:
        return {**super().metrics(model), "tau": self.tau}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "tau": self.tau}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.tau = state.get("tau", self.tau)
