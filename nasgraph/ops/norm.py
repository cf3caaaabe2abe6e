"""LayerNorm or RMSNorm over the last axis."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from nasgraph.ops.base import Op, OpConfig
from nasgraph.ops.registry import register


class NormConfig(OpConfig):
    type: Literal["layer", "rms"] | None = None  # default: model.norm.type
    eps: float = 1e-5


class RMSNorm(nn.Module):
    """x / rms(x) * weight, written out so every exporter and FLOP counter sees plain ops."""

    def __init__(self, d: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


@register("norm")
class Norm(Op):
    Config = NormConfig
    positionwise = True

    def __init__(self, config: NormConfig, ctx):
        super().__init__(config, ctx)
        d = ctx.d_model
        self.norm = nn.LayerNorm(d, eps=config.eps) if (config.type or ctx.norm) == "layer" else RMSNorm(d, config.eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm(x)
