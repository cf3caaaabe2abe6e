"""BigBird block-sparse softmax attention: window blocks + global blocks + random blocks.

The sequence is cut into blocks of `block` positions. Query block i sees its window blocks
i - window_blocks .. i + window_blocks (causal: i - window_blocks .. i, future masked inside block i),
the first n_global blocks, and n_random other blocks drawn once at construction from `seed`. The global
blocks also attend to every key (causal: every earlier key). O(T (3 + g + r) b d) time.

The random pattern is a buffer of scores fixed at construction (so export is exact): for nb blocks,
block i takes the n_random highest-scoring blocks among rows/columns 0..nb-1 that are neither window
nor global (causal: only blocks before its window); fewer when not enough such blocks exist. The
buffer is sized by max_len, hence bounded.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field

from nasgraph.attention._blocks import (block_attention, block_flags, global_keys, global_rows, head_major,
                                        merge_heads, neighbour_blocks, real_tokens, relative_lag, to_blocks)
from nasgraph.attention._decode import as_position, attend_one, kv_cache_shapes
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class BigBirdConfig(AttentionConfig):
    block: int = Field(64, ge=1)         # positions per block (LRA default 64)
    window_blocks: int = Field(1, ge=0)  # neighbour blocks on each side (1 -> 3 window blocks)
    n_global: int = Field(1, ge=0)       # leading global blocks
    n_random: int = Field(3, ge=0)       # random blocks per query block
    seed: int = 0                        # seed of the fixed random pattern


@register("bigbird")
class BigBirdAttention(Attention):
    """Block-sparse attention of BigBird (ITC form, global blocks at the start)."""

    Config = BigBirdConfig
    caps = Capabilities(bounded=True, linear=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        max_blocks = math.ceil(self.max_len / self.config.block)
        gen = torch.Generator().manual_seed(self.config.seed)
        self.register_buffer("random_scores", torch.rand(max_blocks, max_blocks, generator=gen))

    def random_blocks(self, nb: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Random key blocks of each query block for nb blocks: indices (nb, r), picked (nb, r) bool."""
        c, r = self.config, self.config.n_random
        blk = torch.arange(nb, device=device)
        lag = blk[:, None] - blk[None, :]                                 # (nb, nb): query block - key block
        outside = (lag > c.window_blocks) if self.causal else (lag.abs() > c.window_blocks)
        candidate = outside & (blk[None, :] >= c.n_global)                # (nb, nb)
        scores = self.random_scores[:nb, :nb].where(candidate, -1.0)      # (nb, nb)
        top, idx = F.pad(scores, [0, r], value=-1.0).topk(r, dim=-1)      # (nb, r): padded so r <= width
        picked = top >= 0
        return idx.where(picked, 0), picked

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_length(x.shape[1])
        T = x.shape[1]
        c, b = self.config, self.config.block
        G = c.n_global * b                                                 # global positions
        after = 0 if self.causal else c.window_blocks
        real = real_tokens(mask, x)                                        # (B, T)
        q, k, v = (head_major(p(x), self.n_heads)
                   for p in (self.q_proj, self.k_proj, self.v_proj))    # (H, B, T, dh)
        qb, kb, vb = to_blocks(q, b), to_blocks(k, b), to_blocks(v, b)     # (H, B, nb, b, dh)
        nb = qb.shape[2]
        # window blocks; global positions are skipped here because they come as global keys
        real_b = block_flags(real & (torch.arange(T, device=x.device) >= G), b)  # (B, nb, b)
        keys = [neighbour_blocks(kb, c.window_blocks, after)]              # (H, B, nb, L, dh)
        values = [neighbour_blocks(vb, c.window_blocks, after)]
        real_w = neighbour_blocks(real_b[..., None], c.window_blocks, after)[..., 0]  # (B, nb, L)
        allowed = [real_w[:, :, None, :]]                                  # (B, nb, 1, L)
        if self.causal:
            allowed[0] = allowed[0] & (relative_lag(b, c.window_blocks, 0, x.device) >= 0)  # (B, nb, b, L)
        if c.n_random:
            idx, picked = self.random_blocks(nb, x.device)                 # (nb, r)
            keys.append(kb[:, :, idx].flatten(3, 4))                       # (H, B, nb, r*b, dh)
            values.append(vb[:, :, idx].flatten(3, 4))
            ok = real_b[:, idx] & picked[None, :, :, None]                 # (B, nb, r, b)
            allowed.append(ok.flatten(2, 3)[:, :, None, :])                # (B, nb, 1, r*b)
        if G:
            kg, vg, allowed_g = global_keys(k, v, real, G, b, self.causal)  # (H, B, nb, G, dh), (B, nb, *, G)
            keys.insert(0, kg), values.insert(0, vg), allowed.insert(0, allowed_g)
        allowed_cat = torch.cat([a.expand(-1, nb, b, -1) for a in allowed], -1)  # (B, nb, b, L')
        out = block_attention(qb, torch.cat(keys, 3), torch.cat(values, 3), allowed_cat)  # (H, B, nb, b, dh)
        if G:
            rows = global_rows(q, k, v, mask, G, self.causal)              # (H, B, G, dh)
            out = torch.cat([rows, out.flatten(2, 3)[:, :, G:]], 2)        # (H, B, T', dh)
            return out[:, :, :T].permute(1, 2, 0, 3)                       # (B, T, H, dh)
        return merge_heads(out, T)                                         # (B, T, H, dh)

    # -- decoding: a KV cache (B, H, S, dh), read through the block pattern ------------------------------
    # Causal rows of the random pattern only draw key blocks before the window, so a query block's
    # random blocks do not depend on how many blocks follow it: the cache reproduces heads() exactly.
    def state_shapes(self, batch="B"):
        return kv_cache_shapes(batch, self.n_heads, self.head_dim)

    def prefill_heads(self, x):
        return self.heads(x), (self.split(self.k_proj(x)), self.split(self.v_proj(x)))

    def step_heads(self, x_t, state, pos):
        B, c = x_t.shape[0], self.config
        pos = as_position(pos, x_t)
        q, k, v = (p(x_t).view(B, self.n_heads, 1, self.head_dim)
                   for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, H, 1, dh)
        k_cache, v_cache = torch.cat([state[0], k], 2), torch.cat([state[1], v], 2)  # (B, H, S + 1, dh)
        j = torch.arange(k_cache.shape[2], device=x_t.device)          # (S + 1,) positions 0 .. pos
        key_block, block, G = j // c.block, pos // c.block, c.n_global * c.block
        allowed = (j < G) | ((key_block >= block - c.window_blocks) & (j >= G))  # global | window
        if c.n_random:
            blocks = torch.arange(self.random_scores.shape[0], device=x_t.device)  # every block of max_len
            candidate = (block - blocks > c.window_blocks) & (blocks >= c.n_global)
            scores = self.random_scores.index_select(0, block[None])[0].where(candidate, -1.0)
            top, idx = F.pad(scores, [0, c.n_random], value=-1.0).topk(c.n_random)  # (r,), as random_blocks
            drawn = ((key_block[:, None] == idx) & (top >= 0)).any(-1)  # (S + 1,)
            allowed = allowed | (drawn & (j >= G))
        o = attend_one(q, k_cache, v_cache, self.scale, allowed)       # (B, H, 1, dh)
        return o[:, :, 0], (k_cache, v_cache)                          # (B, H, dh)
