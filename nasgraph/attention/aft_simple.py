"""AFT-simple (Attention Free Transformer): Y_t = sigmoid(Q_t) * sum_t' softmax_t'(K)_t' * V_t'.

The softmax runs over positions, per channel: O(T d) time and memory. Causal form: running (prefix)
sums over t' <= t of exp(K) * V and exp(K).
"""
from __future__ import annotations

import torch

from nasgraph.attention._blocks import aft_output, aft_terms
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class AFTSimpleConfig(AttentionConfig):
    """AFT-simple has no options."""


@register("aft_simple")
class AFTSimple(Attention):
    """Attention-free token mixing with a per-channel softmax over positions."""

    Config = AFTSimpleConfig
    caps = Capabilities(linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)      # (B, T, C)
        terms = aft_terms(k, v, mask)                                   # (B, T, 2C)
        sums = terms.cumsum(1) if self.causal else terms.sum(1, keepdim=True)  # (B, T or 1, 2C)
        return aft_output(q, sums, self.n_heads)                        # (B, T, H, dh)
