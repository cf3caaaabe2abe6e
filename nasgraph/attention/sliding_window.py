"""Longformer-style sliding-window softmax attention with optional global tokens.

Query i sees keys j with |i - j| <= window (causal: 0 <= i - j <= window). The first n_global
positions are global: they attend to every key (causal: every earlier key) and every query attends to
them. Computed by blocks of `window` positions, each against its neighbour blocks, plus the global
keys: O(T (window + n_global) d) time and memory, never a T x T matrix.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_positions, neighbour_blocks,
                                        neighbour_positions, to_blocks)
from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities, key_padding_bias
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

    def band(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Window + global keys for every query. q, k, v: (B, T, C), real: (B, T) -> (B, T, H, dh)."""
        B, T, _ = q.shape
        w, g = self.config.window, self.config.n_global
        after = 0 if self.causal else 1
        qb = to_blocks(q, w)                                            # (B, nb, w, C)
        nb = qb.shape[1]
        kb, vb = (neighbour_blocks(to_blocks(t, w), 1, after) for t in (k, v))  # (B, nb, L, C)
        ok = neighbour_blocks(to_blocks(real[..., None], w), 1, after)[..., 0]  # (B, nb, L)
        qpos = block_positions(nb, w, q.device)[:, :, None]             # (nb, w, 1)
        kpos = neighbour_positions(nb, w, 1, after, q.device)[:, None]  # (nb, 1, L)
        lag = qpos - kpos                                               # (nb, w, L)
        near = (lag <= w) & (lag >= (0 if self.causal else -w)) & (kpos >= g)  # global keys come below
        allowed = ok[:, :, None, :] & near                              # (B, nb, w, L)
        if g:
            kg, vg = (t[:, None, :g].expand(B, nb, -1, -1) for t in (k, v))  # (B, nb, g, C)
            gpos = torch.arange(T, device=q.device)[:g]                  # (g,), fewer when T < g
            allowed_g = real[:, None, None, :g] & ((gpos <= qpos) if self.causal else (gpos >= 0))
            kb, vb = torch.cat([kg, kb], 2), torch.cat([vg, vb], 2)      # (B, nb, g + L, C)
            allowed = torch.cat([allowed_g.expand(B, nb, w, -1), allowed], -1)  # (B, nb, w, g + L)
        out = block_attention(qb, kb, vb, allowed, self.n_heads)        # (B, nb, w, H, dh)
        return out.flatten(1, 2)[:, :T]                                  # (B, T, H, dh)

    def global_rows(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                    mask: torch.Tensor | None) -> torch.Tensor:
        """Full attention for the first n_global queries: (B, g, H, dh)."""
        g, T = self.config.n_global, k.shape[1]
        qg, k, v = self.split(q[:, :g]), self.split(k), self.split(v)  # (B, H, g or T, dh)
        bias = key_padding_bias(mask, q.dtype)                          # (B, 1, 1, T)
        if self.causal:
            pos = torch.arange(T, device=q.device)                     # (T,)
            causal = (pos[None, :] > pos[:g, None]).to(q.dtype) * NEG_INF  # (g, T)
            bias = causal if bias is None else bias + causal
        return F.scaled_dot_product_attention(qg, k, v, attn_mask=bias).transpose(1, 2)  # (B, g, H, dh)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)      # (B, T, C)
        real = mask if mask is not None else torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        out = self.band(q, k, v, real)                                  # (B, T, H, dh)
        g = self.config.n_global
        if g:
            out = torch.cat([self.global_rows(q, k, v, mask), out[:, g:]], 1)  # (B, T, H, dh)
        return out
