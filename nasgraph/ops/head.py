"""Linear classifier head: (B, D) -> (B, num_classes)."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from nasgraph.ops.base import Op, OpConfig, expect
from nasgraph.ops.registry import register


class HeadConfig(OpConfig):
    num_classes: int | None = Field(None, gt=0)  # default: the task's


@register("head")
class Head(Op):
    Config = HeadConfig
    is_head = True

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        expect(inputs[0], ("B", ctx.d_model), "head")
        return ("B", config.num_classes or ctx.num_classes)

    def __init__(self, config: HeadConfig, ctx):
        super().__init__(config, ctx)
        self.proj = nn.Linear(ctx.d_model, config.num_classes or ctx.num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(x)
