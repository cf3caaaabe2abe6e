"""Sparse Transformer "fixed" attention pattern (Child et al. 2019), both parts merged in every head.

Query i sees (1) the keys of its own block of `block` positions and (2) the "summary" columns: the
last `n_summary` positions of every block (j mod block >= block - n_summary). Causal: only j <= i.
Computed by blocks: each query block against its own keys plus the T * n_summary / block summary keys,
so O(T (block + T c / block) d) time, about (c / block) of dense attention at long T.
"""
from __future__ import annotations

import torch
from pydantic import Field, ValidationInfo, field_validator

from nasgraph.attention._blocks import block_attention, block_positions, to_blocks
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
    caps = Capabilities()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        l, c = self.config.block, self.config.n_summary
        real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool, device=x.device)
        qb, kb, vb = (to_blocks(p(x), l) for p in (self.q_proj, self.k_proj, self.v_proj))  # (B, nb, l, C)
        real_b = to_blocks(real[..., None], l)[..., 0]                    # (B, nb, l)
        nb = qb.shape[1]
        pos = block_positions(nb, l, x.device)                            # (nb, l)
        blk = torch.arange(nb, device=x.device)
        # summary keys: the last c slots of every block, shared by all query blocks
        ks, vs = (t[:, :, l - c:].flatten(1, 2)[:, None].expand(-1, nb, -1, -1) for t in (kb, vb))  # (B, nb, nb*c, C)
        spos = pos[:, l - c:].flatten()                                   # (nb*c,)
        sblk = blk[:, None].expand(nb, c).flatten()                       # (nb*c,)
        own_blk = sblk[None, :] != blk[:, None]                           # (nb, nb*c): own block comes locally
        allowed_s = (real_b[:, :, l - c:].flatten(1)[:, None, None, :]
                     & own_blk[None, :, None, :])                         # (B, nb, 1, nb*c)
        allowed_l = real_b[:, :, None, :]                                 # (B, nb, 1, l)
        if self.causal:
            allowed_s = allowed_s & (spos[None, None, :] <= pos[:, :, None])[None]  # (B, nb, l, nb*c)
            allowed_l = allowed_l & torch.ones(l, l, dtype=torch.bool, device=x.device).tril()
        allowed = torch.cat([allowed_s.expand(B, nb, l, -1), allowed_l.expand(B, nb, l, -1)], -1)
        keys, values = torch.cat([ks, kb], 2), torch.cat([vs, vb], 2)     # (B, nb, nb*c + l, C)
        out = block_attention(qb, keys, values, allowed, self.n_heads)   # (B, nb, l, H, dh)
        return out.flatten(1, 2)[:, :T]                                   # (B, T, H, dh)
