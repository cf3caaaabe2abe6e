"""Longformer-style sliding-window softmax attention with optional global tokens.

Query i sees keys j with |i - j| <= window (causal: 0 <= i - j <= window). The first n_global
positions are global: they attend to every key (causal: every earlier key) and every query attends to
them. The first `sinks` positions are attention sinks (StreamingLLM, Xiao et al. 2023, arXiv
2309.17453): every query sees them as keys (causal: when they are not in its future), but
they attend only within their window. Computed by blocks of `window` positions, each against its
neighbour blocks, plus the global and sink keys: O(T (window + max(n_global, sinks)) d) time and
memory, never a T x T matrix. The causal form without global or sink keys runs a sequence longer
than `block` by blocks, carrying the last `window` keys and values (`_by_blocks`; exported: always),
so its tensors stay cache-sized at any length.

Decoding: query i sees exactly the keys j <= i with j < s or i - j <= window (s = max(n_global, sinks)),
so the state is the first s keys/values (the sinks, written as their positions go by) and a window of
the last `window` keys/values: fixed size, O((s + window) d) per token.
"""
from __future__ import annotations

import torch
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_flags, global_keys, global_rows, head_major,
                                        merge_heads, neighbour_blocks, pair_blocks, real_tokens, relative_lag,
                                        to_blocks)
from nasgraph.attention._by_blocks import by_blocks
from nasgraph.attention._decode import as_position, attend_one, first_positions, last_positions, push_window
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class SlidingWindowConfig(AttentionConfig):
    window: int = Field(128, ge=1)   # one-sided reach: keys within +-window (causal: the previous window)
    n_global: int = Field(0, ge=0)   # the first n_global positions attend to all and are attended by all
    sinks: int = Field(0, ge=0)      # the first `sinks` positions are keys of every query (attention sinks)
    block: int = Field(1024, ge=0)    # causal, no global/sink keys: longer inputs run by blocks of about this
    #                                  many positions, the last window of keys carried (see `_by_blocks`); 0: never


@register("sliding_window")
class SlidingWindowAttention(Attention):
    """Sliding-window (band) softmax attention plus global tokens (Longformer)."""

    Config = SlidingWindowConfig
    caps = Capabilities(linear=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        w, g = self.config.window, self.config.n_global
        s = max(g, self.config.sinks)                                   # keys every query sees
        if self.causal and not s:  # banded blocks, the last window of keys carried: see `_by_blocks`
            keep = None if mask is None else mask.to(x.dtype)           # (B, T)
            return by_blocks(self, self.causal_band, x, keep, self.band_start(x), self.config.block, w)[0]
        after = 0 if self.causal else 1
        real = real_tokens(mask, x)                                     # (B, T)
        q, k, v = (head_major(p(x), self.n_heads)
                   for p in (self.q_proj, self.k_proj, self.v_proj))    # (H, B, T, dh)
        qb = to_blocks(q, w)                                            # (H, B, nb, w, dh)
        kb, vb = (neighbour_blocks(to_blocks(t, w), 1, after) for t in (k, v))  # (H, B, nb, L, dh)
        # global and sink keys come separately below, so the band skips positions < s
        not_global = torch.arange(T, device=x.device) >= s              # (T,)
        real_kb = block_flags(real & not_global, w)[..., None]          # (B, nb, w, 1)
        real_kb = neighbour_blocks(real_kb, 1, after)[..., 0]           # (B, nb, L)
        lag = relative_lag(w, 1, after, x.device)                       # (w, L)
        band = (lag <= w) & (lag >= (0 if self.causal else -w))         # (w, L)
        allowed = real_kb[:, :, None, :] & band                         # (B, nb, w, L)
        if s:
            kg, vg, allowed_g = global_keys(k, v, real, s, w, self.causal)  # (H, B, nb, s, dh), (B, nb, *, s)
            kb, vb = torch.cat([kg, kb], 3), torch.cat([vg, vb], 3)      # (H, B, nb, s + L, dh)
            allowed = torch.cat([allowed_g.expand(-1, -1, w, -1), allowed], -1)  # (B, nb, w, s + L)
        out = block_attention(qb, kb, vb, allowed)                      # (H, B, nb, w, dh)
        if g:
            rows = global_rows(q, k, v, mask, g, self.causal)           # (H, B, g, dh)
            out = torch.cat([rows, out.flatten(2, 3)[:, :, g:]], 2)     # (H, B, T', dh)
            return out[:, :, :T].permute(1, 2, 0, 3)                    # (B, T, H, dh)
        return merge_heads(out, T)                                      # (B, T, H, dh)

    def band_start(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """causal_band's state before the first position: zero keys, values (H, B, w, dh), flags (B, w)."""
        H, B, w, dh = self.n_heads, x.shape[0], self.config.window, self.head_dim
        return x.new_zeros(H, B, w, dh), x.new_zeros(H, B, w, dh), x.new_zeros(B, w)  # distinct: a scan's carry

    def causal_band(self, x: torch.Tensor, keep: torch.Tensor | None, state: tuple[torch.Tensor, ...] | None
                    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """Causal band attention (no global or sink keys) of x (B, T, d), keep (B, T) 1.0 / 0.0 (None: all
        real), after the previous `window` keys, values (H, B, w, dh) and their keep flags (B, w) in
        state (None: none) -> (heads (B, T, H, dh), the last window of x's keys, values and flags).

        Query block i (w positions) attends to key blocks i - 1 and i of [previous window, x]."""
        w, T = self.config.window, x.shape[1]
        q, k, v = (head_major(p(x), self.n_heads)
                   for p in (self.q_proj, self.k_proj, self.v_proj))    # (H, B, T, dh)
        real = torch.ones_like(x[..., 0]) if keep is None else keep     # (B, T)
        state = self.band_start(x) if state is None else state
        k, v = torch.cat([state[0], k], 2), torch.cat([state[1], v], 2)  # (H, B, w + T, dh)
        real = torch.cat([state[2], real], 1)                           # (B, w + T)
        kb, vb, rb = (to_blocks(t, w) for t in (k, v, real[..., None]))  # (H, B, nb + 1, w, dh), (B, nb + 1, w, 1)
        real_kb = pair_blocks(rb)[..., 0] > 0                           # (B, nb, 2w)
        lag = relative_lag(w, 1, 0, x.device)                           # (w, 2w)
        allowed = real_kb[:, :, None, :] & (lag <= w) & (lag >= 0)      # (B, nb, w, 2w)
        out = block_attention(to_blocks(q, w), pair_blocks(kb), pair_blocks(vb), allowed)  # (H, B, nb, w, dh)
        # the last key block: x's last window when T is a multiple of w (always so by blocks)
        return merge_heads(out, T), (kb[:, :, -1], vb[:, :, -1], rb[:, -1, :, 0])  # (B, T, H, dh)

    # -- decoding: a window of the last `window` keys/values plus the s sink keys/values -----------------
    @property
    def n_sinks(self) -> int:
        """s: the first positions every query sees (global tokens and attention sinks)."""
        return max(self.config.n_global, self.config.sinks)

    def state_shapes(self, batch="B"):
        window = (batch, self.n_heads, self.config.window, self.head_dim)
        sinks = (batch, self.n_heads, self.n_sinks, self.head_dim)
        return [("window_k", window), ("window_v", window)] + (
            [("sink_k", sinks), ("sink_v", sinks)] if self.n_sinks else [])

    def prefill_heads(self, x):
        k, v = self.split(self.k_proj(x)), self.split(self.v_proj(x))   # (B, H, T, dh)
        state = (last_positions(k, self.config.window), last_positions(v, self.config.window))
        if self.n_sinks:
            state += (first_positions(k, self.n_sinks), first_positions(v, self.n_sinks))
        return self.heads(x), state

    def step_heads(self, x_t, state, pos):
        B, w, s = x_t.shape[0], self.config.window, self.n_sinks
        pos = as_position(pos, x_t)
        q, k, v = (p(x_t).view(B, self.n_heads, 1, self.head_dim)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, 1, dh)
        keys, window_k = push_window(state[0], k)                     # (B, H, w + 1, dh): positions pos - w .. pos
        values, window_v = push_window(state[1], v)
        allowed = pos - w + torch.arange(w + 1, device=x_t.device) >= s  # (w + 1,): sinks come separately
        new = (window_k, window_v)
        if s:
            slot = torch.arange(s, device=x_t.device)                  # (s,)
            writes = (slot == pos)[:, None]                            # (s, 1): this token is a sink
            sink_k, sink_v = torch.where(writes, k, state[2]), torch.where(writes, v, state[3])  # (B, H, s, dh)
            keys, values = torch.cat([sink_k, keys], 2), torch.cat([sink_v, values], 2)  # (B, H, s + w + 1, dh)
            allowed = torch.cat([slot <= pos, allowed])                # (s + w + 1,)
            new += (sink_k, sink_v)
        o = attend_one(q, keys, values, self.scale, allowed)           # (B, H, 1, dh)
        return o[:, :, 0], new                                         # (B, H, dh)
