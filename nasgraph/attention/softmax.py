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

from nasgraph.attention._decode import attend_one, kv_cache_shapes
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities, causal_bias, key_padding_bias
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
    caps = Capabilities(decodable=True)   # decoding state: a KV cache of n_kv_heads, growing by a position a token

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_kv = self.config.n_kv_heads or self.n_heads
        if self.n_heads % self.n_kv:
            raise ConfigError(f"attention 'softmax': n_kv_heads {self.n_kv} does not divide the {self.n_heads} "
                              f"heads; valid: {[d for d in range(1, self.n_heads + 1) if self.n_heads % d == 0]}")
        self.q_proj = nn.Linear(self.d_model, self.inner)
        self.k_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)
        self.v_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)

    def bias(self, mask: torch.Tensor | None, T: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Additive bias broadcastable to (B, H, T, T), or None."""
        bias = key_padding_bias(mask, ref.dtype)                     # (B, 1, 1, T)
        if self.causal:
            causal = causal_bias(T, ref.device, ref.dtype)           # (T, T)
            bias = causal if bias is None else bias + causal         # (B, 1, T, T)
        return bias

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.heads_and_cache(x, mask)[0]

    def heads_and_cache(self, x: torch.Tensor, mask: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """heads(x) (B, T, H, dh) and the keys and values of x, (B, n_kv, T, dh) each."""
        q = self.split(self.q_proj(x))                               # (B, H, T, dh)
        k_kv, v_kv = (p(x).unflatten(-1, (self.n_kv, self.head_dim)).transpose(1, 2)
                      for p in (self.k_proj, self.v_proj))           # (B, n_kv, T, dh)
        g = self.n_heads // self.n_kv
        k, v = k_kv, v_kv  # (B, H, T, dh) when n_kv == H: no copy, no Expand chain in an exported graph
        if g > 1:
            k, v = k_kv.repeat_interleave(g, dim=1), v_kv.repeat_interleave(g, dim=1)  # (B, H, T, dh)
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
        return out.transpose(1, 2), (k_kv, v_kv)                     # (B, T, H, dh)

    # -- decoding: a KV cache (B, n_kv, S, dh) that grows by one position per token --------------------
    def state_shapes(self, batch="B"):
        return kv_cache_shapes(batch, self.n_kv, self.head_dim)

    def prefill_heads(self, x):
        return self.heads_and_cache(x)

    def step_heads(self, x_t, state, pos):
        B, g = x_t.shape[0], self.n_heads // self.n_kv
        q = self.q_proj(x_t).view(B, self.n_kv, g, self.head_dim)    # (B, n_kv, g, dh): a query group per kv head
        k, v = (p(x_t).view(B, self.n_kv, 1, self.head_dim) for p in (self.k_proj, self.v_proj))
        k_cache, v_cache = torch.cat([state[0], k], 2), torch.cat([state[1], v], 2)  # (B, n_kv, S + 1, dh)
        o = attend_one(q, k_cache, v_cache, self.scale)              # (B, n_kv, g, dh)
        return o.reshape(B, self.n_heads, self.head_dim), (k_cache, v_cache)  # (B, H, dh)
