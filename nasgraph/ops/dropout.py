"""Dropout (p defaults to model.dropout)."""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from nasgraph.ops.base import Op, OpConfig
from nasgraph.ops.registry import register


class DropoutConfig(OpConfig):
    p: float | None = Field(None, ge=0, lt=1)


@register("dropout")
class Dropout(Op):
    Config = DropoutConfig
    positionwise = True

    def __init__(self, config: DropoutConfig, ctx):
        super().__init__(config, ctx)
        self.drop = nn.Dropout(ctx.dropout if config.p is None else config.p)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.drop(x)
