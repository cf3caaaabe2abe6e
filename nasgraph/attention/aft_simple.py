"""AFT-simple (Attention Free Transformer): Y_t = sigmoid(Q_t) * sum_t' softmax_t'(K)_t' * V_t'.

The softmax runs over positions, per channel: O(T d) time and memory. Causal form: running (prefix)
sums over t' <= t of exp(K) * V and exp(K), with K shifted by its per-channel max.

Decoding: the two running sums and their running max shift, (B, C) each, fixed size.
"""
from __future__ import annotations

import torch

from nasgraph.attention._blocks import aft_keys, aft_output
from nasgraph.attention._decode import aft_prefill_sums, online_sums
from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class AFTSimpleConfig(AttentionConfig):
    """AFT-simple has no options."""


@register("aft_simple")
class AFTSimple(Attention):
    """Attention-free token mixing with a per-channel softmax over positions."""

    Config = AFTSimpleConfig
    caps = Capabilities(linear=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)      # (B, T, C)
        if not self.causal:  # one fused softmax over positions; padded keys get weight exp(NEG_INF) = 0
            if mask is not None:
                k = k.masked_fill(~mask[..., None], NEG_INF)
            context = (k.softmax(1) * v).sum(1, keepdim=True)           # (B, 1, C)
            return (torch.sigmoid(q) * context).unflatten(-1, (self.n_heads, -1))  # (B, T, H, dh)
        ek = aft_keys(k, mask)                                          # (B, T, C)
        num, den = (ek * v).cumsum(1), ek.cumsum(1)                     # (B, T, C) prefix sums
        return aft_output(q, num, den, self.n_heads)                    # (B, T, H, dh)

    # -- decoding: running sums of exp(K - m) V and exp(K - m) with their running max m -----------------
    def state_shapes(self, batch="B"):
        return [(name, (batch, self.inner)) for name in ("k_max", "num", "den")]

    def state_fills(self):
        return (NEG_INF, 0.0, 0.0)

    def prefill_heads(self, x):
        return self.heads(x), aft_prefill_sums(self.k_proj(x), self.v_proj(x))

    def step_heads(self, x_t, state, pos):
        q, k, v = self.q_proj(x_t), self.k_proj(x_t), self.v_proj(x_t)  # (B, C)
        m, num, den = online_sums(*state, k, v)                         # (B, C) each
        return aft_output(q, num, den, self.n_heads), (m, num, den)     # (B, H, dh)
