"""Block-local softmax attention: queries attend only to keys of their own block of `window` positions.

Computed by blocks (T / w small softmax problems), never as a banded mask over a T x T matrix; T is
padded up to a multiple of the block internally. O(T w d) time, O(T w) memory.
"""
from __future__ import annotations

import torch
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_flags, head_major, merge_heads, real_tokens,
                                        to_blocks)
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class LocalConfig(AttentionConfig):
    window: int = Field(50, ge=1)  # block size: a query sees the keys of its own block (LRA default 50)


@register("local")
class LocalAttention(Attention):
    """Block-diagonal softmax attention (LRA "local"); causal form masks the future inside the block."""

    Config = LocalConfig
    caps = Capabilities(linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T, w = x.shape[1], self.config.window
        q, k, v = (to_blocks(head_major(p(x), self.n_heads), w)
                   for p in (self.q_proj, self.k_proj, self.v_proj))    # (H, B, nb, w, dh)
        allowed = block_flags(real_tokens(mask, x), w)[:, :, None, :]  # (B, nb, 1, w)
        if self.causal:
            allowed = allowed & torch.ones(w, w, dtype=torch.bool, device=x.device).tril()  # (B, nb, w, w)
        return merge_heads(block_attention(q, k, v, allowed), T)       # (B, T, H, dh)
