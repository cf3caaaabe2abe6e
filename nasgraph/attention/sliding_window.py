"""Longformer-style sliding-window softmax attention with optional global tokens.

Query i sees keys j with |i - j| <= window (causal: 0 <= i - j <= window). The first n_global
positions are global: they attend to every key (causal: every earlier key) and every query attends to
them. Computed by blocks of `window` positions, each against its neighbour blocks, plus the global
keys: O(T (window + n_global) d) time and memory, never a T x T matrix.
"""
from __future__ import annotations

import torch
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_positions, global_keys, global_rows,
                                        neighbour_blocks, neighbour_positions, to_blocks)
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class SlidingWindowConfig(AttentionConfig):
    window: int = Field(128, ge=1)   # one-sided reach: keys within +-window (causal: the previous window)
    n_global: int = Field(0, ge=0)   # the first n_global positions attend to all and are attended by all


@register("sliding_window")
class SlidingWindowAttention(Attention):
    """Sliding-window (band) softmax attention plus global tokens (Longformer)."""

    Config = SlidingWindowConfig
    caps = Capabilities(linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        w, g = self.config.window, self.config.n_global
        after = 0 if self.causal else 1
        real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=x.device)
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)      # (B, T, C)
        qb = to_blocks(q, w)                                            # (B, nb, w, C)
        nb = qb.shape[1]
        kb, vb = (neighbour_blocks(to_blocks(t, w), 1, after) for t in (k, v))  # (B, nb, L, C)
        real_kb = neighbour_blocks(to_blocks(real[..., None], w), 1, after)[..., 0]  # (B, nb, L)
        qpos = block_positions(nb, w, x.device)[:, :, None]             # (nb, w, 1)
        kpos = neighbour_positions(nb, w, 1, after, x.device)[:, None]  # (nb, 1, L)
        lag = qpos - kpos                                               # (nb, w, L)
        band = (lag <= w) & (lag >= (0 if self.causal else -w)) & (kpos >= g)  # global keys come below
        allowed = real_kb[:, :, None, :] & band                         # (B, nb, w, L)
        if g:
            kg, vg, allowed_g = global_keys(k, v, real, g, qpos, self.causal)  # (B, nb, g, C), (B, nb, w, g)
            kb, vb = torch.cat([kg, kb], 2), torch.cat([vg, vb], 2)      # (B, nb, g + L, C)
            allowed = torch.cat([allowed_g, allowed], -1)                # (B, nb, w, g + L)
        out = block_attention(qb, kb, vb, allowed, self.n_heads).flatten(1, 2)[:, :T]  # (B, T, H, dh)
        if g:
            rows = global_rows(q, k, v, mask, g, self.causal, self.n_heads)  # (B, g, H, dh)
            out = torch.cat([rows, out[:, g:]], 1)                       # (B, T, H, dh)
        return out
