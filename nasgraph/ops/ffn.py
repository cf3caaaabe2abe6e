"""Position-wise feed-forward: GELU/ReLU MLP or SwiGLU. (B, T, D) -> (B, T, D)."""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nasgraph.ops.base import Op, OpConfig, ShapeError
from nasgraph.ops.registry import register


class FFNConfig(OpConfig):
    mult: float | None = Field(None, gt=0)     # default: model.ffn.mult
    hidden: int | None = Field(None, gt=0)     # overrides mult
    activation: Literal["gelu", "relu", "swiglu"] | None = None


@register("ffn")
class FFN(Op):
    Config = FFNConfig
    positionwise = True

    @staticmethod
    def hidden_units(config: FFNConfig, ctx) -> int:
        """`hidden`, else mult x d_model (the op's, else the model's)."""
        return config.hidden or (None if config.mult else ctx.ffn_hidden) or int(ctx.d_model * (config.mult or ctx.ffn_mult))

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        mult = config.mult or ctx.ffn_mult
        if not config.hidden and not math.isfinite(ctx.d_model * mult):
            raise ShapeError(f"ffn: mult {mult} x d_model {ctx.d_model} is not a finite number of hidden units; "
                             f"lower mult or give hidden")
        if cls.hidden_units(config, ctx) < 1:
            raise ShapeError(f"ffn: mult {config.mult or ctx.ffn_mult} x d_model {ctx.d_model} gives 0 hidden "
                             f"units; raise mult or give hidden")
        return inputs[0]

    def __init__(self, config: FFNConfig, ctx):
        super().__init__(config, ctx)
        d = ctx.d_model
        hidden = self.hidden_units(config, ctx)
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
