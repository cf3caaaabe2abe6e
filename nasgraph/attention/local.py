"""Block-local softmax attention: queries attend only to keys of their own block of `window` positions.

Computed by blocks (T / w small softmax problems), never as a banded mask over a T x T matrix; T is
padded up to a multiple of the block internally. O(T w d) time, O(T w) memory.

Decoding: a window of the last w - 1 keys/values, of which those in the current block are seen.
"""
from __future__ import annotations

import torch
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_flags, head_major, merge_heads, real_tokens,
                                        to_blocks)
from nasgraph.attention._decode import as_position, attend_one, last_positions, push_window
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class LocalConfig(AttentionConfig):
    window: int = Field(50, ge=1)  # block size: a query sees the keys of its own block (LRA default 50)


@register("local")
class LocalAttention(Attention):
    """Block-diagonal softmax attention (LRA "local"); causal form masks the future inside the block."""

    Config = LocalConfig
    caps = Capabilities(linear=True, decodable=True)

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

    # -- decoding: a window of the last w - 1 keys/values ---------------------------------------------
    def state_shapes(self, batch="B"):
        shape = (batch, self.n_heads, self.config.window - 1, self.head_dim)
        return [("window_k", shape), ("window_v", shape)]

    def prefill_heads(self, x):
        W = self.config.window - 1
        k, v = self.split(self.k_proj(x)), self.split(self.v_proj(x))   # (B, H, T, dh)
        return self.heads(x), (last_positions(k, W), last_positions(v, W))

    def step_heads(self, x_t, state, pos):
        B, w = x_t.shape[0], self.config.window
        pos = as_position(pos, x_t)
        q, k, v = (p(x_t).view(B, self.n_heads, 1, self.head_dim)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, 1, dh)
        keys, window_k = push_window(state[0], k)                     # (B, H, w, dh): positions pos - w + 1 .. pos
        values, window_v = push_window(state[1], v)
        block_start = pos - pos % w
        allowed = pos - w + 1 + torch.arange(w, device=x_t.device) >= block_start  # (w,)
        o = attend_one(q, keys, values, self.scale, allowed)           # (B, H, 1, dh)
        return o[:, :, 0], (window_k, window_v)                        # (B, H, dh)
