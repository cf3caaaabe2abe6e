"""Position-wise feed-forward: GELU/ReLU MLP or SwiGLU. (B, T, D) -> (B, T, D)."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nasgraph.ops.base import Op, OpConfig
from nasgraph.ops.registry import register


class FFNConfig(OpConfig):
    mult: float | None = Field(None, gt=0)     # default: model.ffn.mult
    hidden: int | None = Field(None, gt=0)     # overrides mult
    activation: Literal["gelu", "relu", "swiglu"] | None = None


@register("ffn")
class FFN(Op):
    Config = FFNConfig

    def __init__(self, config: FFNConfig, ctx):
        super().__init__(config, ctx)
        d = ctx.d_model
        hidden = config.hidden or (None if config.mult else ctx.ffn_hidden) or int(d * (config.mult or ctx.ffn_mult))
        self.activation = config.activation or ctx.ffn_activation
        self.up = nn.Linear(d, 2 * hidden if self.activation == "swiglu" else hidden)
        self.down = nn.Linear(hidden, d)
        self.drop = nn.Dropout(ctx.dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h = self.up(x)                                           # (B, T, hidden or 2*hidden)
        if self.activation == "swiglu":
            gate, value = h.chunk(2, dim=-1)
            h = F.silu(gate) * value                             # (B, T, hidden)
        else:
            h = F.gelu(h) if self.activation == "gelu" else F.relu(h)
        return self.down(self.drop(h))                           # (B, T, D)
