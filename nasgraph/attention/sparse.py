"""Sparse Transformer "fixed" attention pattern (Child et al. 2019), both parts merged in every head.

Query i sees (1) the keys of its own block of `block` positions and (2) the "summary" columns: the
last `n_summary` positions of every block (j mod block >= block - n_summary). Causal: only j <= i.
Computed by blocks: each query block against its own keys plus the T * n_summary / block summary keys,
so O(T (block + T c / block) d) time, about (c / block) of dense attention at long T. Decoding: a KV
cache (growing) read through the same pattern.
"""
from __future__ import annotations

import torch
from pydantic import Field, ValidationInfo, field_validator

from nasgraph.attention._blocks import (block_attention, block_flags, head_major, merge_heads, real_tokens,
                                        to_blocks)
from nasgraph.attention._decode import attend_one, as_position, kv_cache_shapes
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class SparseConfig(AttentionConfig):
    block: int = Field(32, ge=1)     # stride l: the local block and the period of the summary columns
    n_summary: int = Field(1, ge=1)  # c: summary positions at the end of each block

    @field_validator("n_summary")
    @classmethod
    def _summary_fits(cls, n: int, info: ValidationInfo) -> int:
        block = info.data.get("block")
        if block is not None and n > block:
            raise ValueError(f"n_summary must be <= block ({block})")
        return n


@register("sparse")
class SparseAttention(Attention):
    """Fixed strided sparse attention: local block + strided summary columns."""

    Config = SparseConfig
    caps = Capabilities(decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        l, c = self.config.block, self.config.n_summary
        qb, kb, vb = (to_blocks(head_major(p(x), self.n_heads), l)
                      for p in (self.q_proj, self.k_proj, self.v_proj))   # (H, B, nb, l, dh)
        real_b = block_flags(real_tokens(mask, x), l)                     # (B, nb, l)
        nb = qb.shape[2]
        # summary keys: the last c slots of every block, shared by all query blocks; gathered by index
        # (a flatten of the strided slice would make the exporter specialise on nb == 1)
        blk = torch.arange(nb, device=x.device)                           # (nb,)
        slots = (blk[:, None] * l + torch.arange(l - c, l, device=x.device)).flatten()  # (nb*c,)
        ks, vs = (t.flatten(2, 3).index_select(2, slots)[:, :, None].expand(-1, -1, nb, -1, -1)
                  for t in (kb, vb))                                      # (H, B, nb, nb*c, dh)
        slot_blk = slots // l                                             # (nb*c,): block of each summary key
        # the own block's summary slots come with the local keys; causal: only earlier blocks
        seen = (slot_blk < blk[:, None]) if self.causal else (slot_blk != blk[:, None])  # (nb, nb*c)
        allowed_s = real_b.flatten(1)[:, slots][:, None, None, :] & seen[:, None, :]  # (B, nb, 1, nb*c)
        allowed_l = real_b[:, :, None, :]                                 # (B, nb, 1, l)
        if self.causal:
            allowed_l = allowed_l & torch.ones(l, l, dtype=torch.bool, device=x.device).tril()  # (B, nb, l, l)
        allowed = torch.cat([allowed_s.expand(-1, -1, l, -1), allowed_l.expand(-1, -1, l, -1)], -1)
        keys, values = torch.cat([ks, kb], 3), torch.cat([vs, vb], 3)     # (H, B, nb, nb*c + l, dh)
        return merge_heads(block_attention(qb, keys, values, allowed), T)  # (B, T, H, dh)

    # -- decoding: a KV cache (B, H, S, dh), read through the pattern ------------------------------------
    def state_shapes(self, batch="B"):
        return kv_cache_shapes(batch, self.n_heads, self.head_dim)

    def prefill_heads(self, x):
        return self.heads(x), (self.split(self.k_proj(x)), self.split(self.v_proj(x)))

    def step_heads(self, x_t, state, pos):
        B, l, c = x_t.shape[0], self.config.block, self.config.n_summary
        pos = as_position(pos, x_t)
        q, k, v = (p(x_t).view(B, self.n_heads, 1, self.head_dim)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, 1, dh)
        k_cache, v_cache = torch.cat([state[0], k], 2), torch.cat([state[1], v], 2)  # (B, H, S + 1, dh)
        j = torch.arange(k_cache.shape[2], device=x_t.device)          # (S + 1,) positions 0 .. pos
        allowed = (j // l == pos // l) | ((j % l >= l - c) & (j // l < pos // l))  # own block | summaries
        o = attend_one(q, k_cache, v_cache, self.scale, allowed)       # (B, H, 1, dh)
        return o[:, :, 0], (k_cache, v_cache)                          # (B, H, dh)
