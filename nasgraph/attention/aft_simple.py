"""AFT-simple (Attention Free Transformer): Y_t = sigmoid(Q_t) * sum_t' softmax_t'(K)_t' * V_t'.

The softmax runs over positions, per channel: O(T d) time and memory. Causal form: running (prefix)
sums over t' <= t of exp(K) * V and exp(K).
"""
from __future__ import annotations

import torch

from nasgraph.attention._blocks import aft_keys, aft_output
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
        ek = aft_keys(k, mask)                                          # (B, T, C)
        if self.causal:
            num, den = (ek * v).cumsum(1), ek.cumsum(1)                 # (B, T, C) prefix sums
        else:
            num, den = (ek * v).sum(1, keepdim=True), ek.sum(1, keepdim=True)  # (B, 1, C)
        return aft_output(q, num, den, self.n_heads)                    # (B, T, H, dh)
