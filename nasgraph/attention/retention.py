"""Retention (RetNet, Sun et al. 2023, arXiv 2307.08621): linear attention with a fixed decay per head,

    S_t = gamma_h S_{t-1} + k_t^T v_t,   o_t = q_t S_t / sqrt(dk),   gamma_h = 1 - 2^(-5 - h),

i.e. out = (Q K^T / sqrt(dk) * D) V with D_ij = gamma^(i-j) for j <= i, then a per-head norm and a
swish gate (RetNet's multi-scale retention). No xPos rotation. Causal only; O(T (C + d) d) time per
head with chunks of C (see `_recurrent`); decoding keeps one (dk, dv) state per head.
"""
from __future__ import annotations

import math

import torch

from nasgraph.attention._recurrent_layer import Inputs, RecurrentAttention, RecurrentConfig
from nasgraph.attention.registry import register


class RetentionConfig(RecurrentConfig):
    pass


def retention_log_decays(n_heads: int) -> torch.Tensor:
    """log gamma_h = log(1 - 2^(-5 - h)), h = 0 .. H-1: (H,) float64 (cast to the input's dtype in use)."""
    return torch.tensor([math.log1p(-2.0 ** (-5 - h)) for h in range(n_heads)], dtype=torch.float64)


@register("retention")
class Retention(RecurrentAttention):
    """Multi-scale retention: decays from 1 - 1/32 (head 0) towards 1, fixed, one per head."""

    Config = RetentionConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.register_buffer("log_gamma", retention_log_decays(self.n_heads), persistent=False)  # (H,)

    def inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        q, k, v, tail = self.conv_qkv(x, history)                      # (B, H, T, dh)
        fixed = self.log_gamma.to(x.dtype)[None, :, None, None]      # (1, H, 1, 1)
        g = fixed.expand(x.shape[0], -1, x.shape[1], 1)               # (B, H, T, 1)
        return Inputs(q=q * self.scale, k=k, v=v, g=g, conv_tail=tail, fixed=fixed)
