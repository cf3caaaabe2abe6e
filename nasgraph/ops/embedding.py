"""Token embedding plus learned or sinusoidal positions: tokens (B, T) -> (B, T, d_model)."""
from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from nasgraph.errors import SequenceTooLongError
from nasgraph.ops.base import ModelContext, Op, OpConfig, Shape, ShapeError, expect
from nasgraph.ops.registry import register
from nasgraph.tasks.base import PAD_ID


class EmbeddingConfig(OpConfig):
    position: Literal["learned", "sinusoidal", "none"] | None = None  # default: model.position
    max_len: int | None = None  # default: task.max_len; a smaller value is a spec error


def sinusoidal_table(n: int, d: int) -> torch.Tensor:
    """(n, d) sin/cos position table (Vaswani et al.)."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]                      # (n, 1)
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    table = torch.zeros(n, d)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: d // 2])
    return table


@register("embedding")
class Embedding(Op):
    Config = EmbeddingConfig

    @classmethod
    def infer_shape(cls, config, inputs: list[Shape], ctx: ModelContext) -> Shape:
        expect(inputs[0], ("B", "T"), "embedding")
        if config.max_len is not None and config.max_len < ctx.max_len:
            raise ShapeError(f"sequence length {ctx.max_len} (task.max_len) exceeds the embedding's "
                             f"max_len {config.max_len}")
        return ("B", "T", ctx.d_model)

    def __init__(self, config: EmbeddingConfig, ctx: ModelContext):
        super().__init__(config, ctx)
        self.kind = config.position or ctx.position
        self.max_len = config.max_len or ctx.max_len
        self.token = nn.Embedding(ctx.vocab_size, ctx.d_model, padding_idx=PAD_ID)
        nn.init.normal_(self.token.weight, std=0.02)
        with torch.no_grad():
            self.token.weight[PAD_ID].zero_()
        if self.kind == "learned":
            self.position = nn.Parameter(torch.randn(self.max_len, ctx.d_model) * 0.02)
        elif self.kind == "sinusoidal":
            self.register_buffer("position", sinusoidal_table(self.max_len, ctx.d_model), persistent=False)
        else:
            self.position = None

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = tokens.shape[1]
        if T > self.max_len and not torch.jit.is_tracing():
            raise SequenceTooLongError(f"embedding: sequence length {T} exceeds max_len {self.max_len}")
        x = self.token(tokens)                                   # (B, T, D)
        if self.position is not None:
            x = x + self.position[:T]                            # (B, T, D)
        return x

    def embed_at(self, tokens: torch.Tensor, start) -> torch.Tensor:
        """Decoding: tokens (B, T) at positions start .. start + T - 1 (an int or a 0-d int64 tensor)
        -> (B, T, D)."""
        T = tokens.shape[1]
        if isinstance(start, int) and start + T > self.max_len:
            raise SequenceTooLongError(f"embedding: position {start + T - 1} is past max_len {self.max_len}")
        x = self.token(tokens)                                   # (B, T, D)
        if self.position is not None:
            at = torch.as_tensor(start, device=tokens.device) + torch.arange(T, device=tokens.device)  # (T,)
            x = x + self.position.index_select(0, at)            # (B, T, D)
        return x
