"""Softmax (scaled dot-product) attention: softmax(Q K^T / sqrt(d) + mask) V.

With n_kv_heads < n_heads it is grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245):
n_kv_heads key/value heads, each shared by n_heads / n_kv_heads consecutive query heads (the k/v
projections and, in decoding, the cache shrink by that factor).
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pydantic import PositiveInt

from nasgraph.attention.base import Attention, AttentionConfig, causal_bias, key_padding_bias
from nasgraph.attention.registry import register
from nasgraph.errors import ConfigError


class SoftmaxConfig(AttentionConfig):
    impl: Literal["sdpa", "math"] = "sdpa"  # sdpa = torch's fused kernel; math = explicit matmul-softmax
    dropout: float = 0.0
    n_kv_heads: PositiveInt | None = None  # grouped-query attention: key/value heads (None: n_heads)


@register("softmax")
class SoftmaxAttention(Attention):
    """Full softmax attention, O(T^2 d); the baseline every other type approximates."""

    Config = SoftmaxConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_kv = self.config.n_kv_heads or self.n_heads
        if self.n_heads % self.n_kv:
            raise ConfigError(f"attention 'softmax': n_kv_heads {self.n_kv} does not divide the {self.n_heads} "
                              f"heads; valid: {[d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]}")
        self.q_proj = nn.Linear(self.d_model, self.inner)
        self.k_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)
        self.v_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)

    def kv_heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, n_kv*dh) -> (B, H, T, dh): each key/value head repeated for its query group."""
        t = t.unflatten(-1, (self.n_kv, self.head_dim)).transpose(1, 2)  # (B, n_kv, T, dh)
        if self.n_kv == self.n_heads:  # no copy (and no Expand/Reshape chain in an exported graph)
            return t
        return t.repeat_interleave(self.n_heads // self.n_kv, dim=1)     # (B, H, T, dh)

    def bias(self, mask: torch.Tensor | None, T: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Additive bias broadcastable to (B, H, T, T), or None."""
        bias = key_padding_bias(mask, ref.dtype)                     # (B, 1, 1, T)
        if self.causal:
            causal = causal_bias(T, ref.device, ref.dtype)           # (T, T)
            bias = causal if bias is None else bias + causal         # (B, 1, T, T)
        return bias

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q = self.split(self.q_proj(x))                               # (B, H, T, dh)
        k, v = self.kv_heads(self.k_proj(x)), self.kv_heads(self.v_proj(x))  # (B, H, T, dh)
        bias = self.bias(mask, x.shape[1], q)
        p = self.config.dropout if self.training else 0.0
        if self.config.impl == "sdpa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, H, T, dh)
        else:
            logits = (q @ k.transpose(-2, -1)) * self.scale          # (B, H, T, T)
            if bias is not None:
                logits = logits + bias
            probs = F.dropout(logits.softmax(dim=-1), p)             # (B, H, T, T)
            out = probs @ v                                          # (B, H, T, dh)
        return out.transpose(1, 2)                                   # (B, T, H, dh)
