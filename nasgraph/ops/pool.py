"""Sequence pooling: CLS (position 0) or masked mean. (B, T, D) -> (B, D)."""
from __future__ import annotations

from typing import Literal

import torch

from nasgraph.ops.base import Op, OpConfig, expect
from nasgraph.ops.registry import register


class PoolConfig(OpConfig):
    type: Literal["cls", "mean"] | None = None  # default: model.pooling


@register("pool")
class Pool(Op):
    Config = PoolConfig

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        expect(inputs[0], ("B", "T", ctx.d_model), "pool")
        return ("B", inputs[0][2])

    def __init__(self, config: PoolConfig, ctx):
        super().__init__(config, ctx)
        self.type = config.type or ctx.pooling

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.type == "cls":
            return x[:, 0]                                       # (B, D)
        if mask is None:
            return x.mean(dim=1)
        w = mask.to(x.dtype)[:, :, None]                         # (B, T, 1)
        return (x * w).sum(1) / w.sum(1).clamp_min(1.0)          # (B, D)
