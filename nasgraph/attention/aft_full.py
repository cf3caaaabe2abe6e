"""AFT-full: Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w[t,t']) V_t' / sum_t' exp(K_t' + w[t,t']).

Learned position biases w = u v^T, u, v in R^{max_len x pos_dim}, init N(0, 1e-2) (bounded by
max_len). exp(K_t' + w) = exp(w) exp(K_t'), so both sums are one (T, T) @ (T, 2C) product: O(T^2 d)
time, O(T^2 + T d) memory, never a (T, T, d) tensor. Causal: t' <= t.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from nasgraph.attention._blocks import aft_output, aft_terms
from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class AFTFullConfig(AttentionConfig):
    pos_dim: int = Field(64, ge=1)   # d': rank of the factorized position biases w = u v^T


@register("aft_full")
class AFTFull(Attention):
    """Attention-free token mixing with learned pairwise position biases."""

    Config = AFTFullConfig
    caps = Capabilities(bounded=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.pos_u = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)
        self.pos_v = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)

    def position_weights(self, T: int) -> torch.Tensor:
        """exp(w - rowmax(w)) over the visible (t, t') pairs, 0 elsewhere: (T, T)."""
        w = self.pos_u[:T] @ self.pos_v[:T].T                            # (T, T)
        if self.causal:
            w = w.masked_fill(torch.ones_like(w, dtype=torch.bool).triu(1), NEG_INF)
        return torch.exp(w - w.amax(-1, keepdim=True))                   # (T, T), row max 1

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_length(x.shape[1])
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)       # (B, T, C)
        terms = aft_terms(k, v, mask)                                    # (B, T, 2C)
        sums = torch.einsum("ts,bsc->btc", self.position_weights(x.shape[1]), terms)  # (B, T, 2C)
        return aft_output(q, sums, self.n_heads)                         # (B, T, H, dh)
