"""DARTFormer (fixed-alpha): candidates averaged with fixed equal weights; after training, each
candidate unit is scored by the metric drop when it alone is masked out (`_masking.UnitMasking`).

Derive rules:
  top1  - each choice point keeps its best candidate for all its heads (homogeneous layer);
  topk  - each point keeps its k best candidates and each head takes its best unit among them;
  prune - repeatedly drop the worst unit of every group with more than one left, fine-tune, rescore.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field

from nasgraph.config import StrictConfig
from nasgraph.errors import ConfigError
from nasgraph.search.strategies._masking import UnitMasking
from nasgraph.search.strategies._supernet import SupernetStrategy
from nasgraph.search.strategies.registry import register


class FixedConfig(StrictConfig):
    derive: Literal["top1", "prune", "topk"] = "top1"
    topk: int = Field(1, gt=0)                    # derive topk: candidates kept per choice point
    finetune_steps: int = Field(100, ge=0)        # derive prune: steps after each drop


@register("fixed")
class Fixed(UnitMasking, SupernetStrategy):
    Config = FixedConfig
    has_arch_step = False

    @classmethod
    def check(cls, config, search, choice_sizes: list[int]) -> None:
        if config.derive == "topk" and choice_sizes and config.topk > min(choice_sizes):
            raise ConfigError(f"topk {config.topk} exceeds the {min(choice_sizes)} candidates of a choice "
                              f"point; valid: 1..{min(choice_sizes)}", key="topk")

    def mix(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        on = self.enabled.get(node, torch.ones_like(alpha, dtype=torch.bool)).to(alpha.dtype)  # (G, C)
        return on / on.sum(-1, keepdim=True).clamp_min(1.0)                                     # equal weights

    def probabilities(self, model) -> dict[str, torch.Tensor]:
        return {n: self.mix(m.alpha, n) for n, m in model.mixed_layers().items()}

    def choose(self, model, accuracy=None, finetune=None, **_) -> dict[str, list[int]]:
        rule, k = self.config.derive, self.config.topk
        if rule == "prune":
            while any((on.sum(-1) > 1).any() for on in self.enabled.values()):
                for node, s in self.score(model, accuracy).items():
                    on = self.enabled[node]
                    for g in range(on.shape[0]):
                        if on[g].sum() > 1:
                            on[g, int(torch.where(on[g], s[g], torch.inf).argmin())] = False
                if finetune is not None and self.config.finetune_steps:
                    finetune(model, self.config.finetune_steps)
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
