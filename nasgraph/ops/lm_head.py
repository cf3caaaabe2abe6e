"""Language-model head: per-position next-token logits (B, T, D) -> (B, T, vocab_size).

`tie: true` shares the weight with the graph's token embedding (GraphModule ties them after
building, so the tie survives state_dict round trips and ONNX export); only the bias is its own.
"""
from __future__ import annotations

import torch
from torch import nn

from nasgraph.ops.base import Op, OpConfig, expect
from nasgraph.ops.registry import register


class LMHeadConfig(OpConfig):
    tie: bool = False             # share the token embedding's (vocab_size, d_model) weight


@register("lm_head")
class LMHead(Op):
    Config = LMHeadConfig
    is_head = True
    positionwise = True

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        expect(inputs[0], ("B", "T", ctx.d_model), "lm_head")
        return ("B", "T", ctx.vocab_size)

    def __init__(self, config: LMHeadConfig, ctx):
        super().__init__(config, ctx)
        self.proj = nn.Linear(ctx.d_model, ctx.vocab_size)

    def tie_to(self, embedding: nn.Embedding) -> None:
        """Use `embedding.weight` (vocab_size, d_model) as this head's weight."""
        if embedding.weight.shape != self.proj.weight.shape:
            raise ValueError(f"lm_head: cannot tie a {tuple(self.proj.weight.shape)} head to a "
                             f"{tuple(embedding.weight.shape)} embedding")
        self.proj.weight = embedding.weight

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.proj(x)                                      # (B, T, V)
