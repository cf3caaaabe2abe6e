"""Softmax (scaled dot-product) attention: softmax(Q K^T / sqrt(d) + mask) V.

With n_kv_heads < n_heads it is grouped-query attention (Ainslie et al. 2023, arXiv 2305.13245):
n_kv_heads key/value heads, each shared by n_heads / n_kv_heads consecutive query heads (the k/v
projections and, in decoding, the cache shrink by that factor).

`short_conv: K` puts the recurrent types' short causal convolution (see `_short_conv`) on the projected
q, k, v: with it one layer binds a key to the value after it (recall without a previous-token head,
and order without a position table); decoding then also carries its last K - 1 inputs ("conv").
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from pydantic import Field, PositiveInt

from nasgraph.attention._decode import attend_one, kv_cache_shapes
from nasgraph.attention._short_conv import ShortConv, convolved
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities, causal_bias, key_padding_bias
from nasgraph.attention.registry import register
from nasgraph.errors import ConfigError


class SoftmaxConfig(AttentionConfig):
    impl: Literal["sdpa", "math"] = "sdpa"  # sdpa = torch's fused kernel; math = explicit matmul-softmax
    dropout: float = 0.0
    n_kv_heads: PositiveInt | None = None  # grouped-query attention: key/value heads (None: n_heads)
    short_conv: int = Field(0, ge=0, le=16)  # K: causal depthwise conv + SiLU on q, k, v; 0: none

    def check_heads(self, n_heads: int) -> None:
        if self.n_kv_heads and n_heads % self.n_kv_heads:
            raise ConfigError(f"attention 'softmax': n_kv_heads {self.n_kv_heads} does not divide the {n_heads} "
                              f"heads; valid: {[d for d in range(1, n_heads + 1) if n_heads % d == 0]}", "n_kv_heads")


@register("softmax")
class SoftmaxAttention(Attention):
    """Full softmax attention, O(T^2 d); the baseline every other type approximates."""

    Config = SoftmaxConfig
    caps = Capabilities(decodable=True)   # decoding state: a KV cache of n_kv_heads, growing by a position a token

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config.check_heads(self.n_heads)
        self.n_kv = self.config.n_kv_heads or self.n_heads
        self.q_proj = nn.Linear(self.d_model, self.inner)
        self.k_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)
        self.v_proj = nn.Linear(self.d_model, self.n_kv * self.head_dim)
        K = self.config.short_conv
        self.short_conv = ShortConv(self.inner + 2 * self.n_kv * self.head_dim, K) if K else None

    def bias(self, mask: torch.Tensor | None, T: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Additive bias broadcastable to (B, H, T, T), or None."""
        bias = key_padding_bias(mask, ref.dtype)                     # (B, 1, 1, T)
        if self.causal:
            causal = causal_bias(T, ref.device, ref.dtype)           # (T, T)
            bias = causal if bias is None else bias + causal         # (B, 1, T, T)
        return bias

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.heads_and_cache(x, mask)[0]

    def projected(self, x: torch.Tensor, history: torch.Tensor | None = None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """q (B, H, T, dh), k and v (B, n_kv, T, dh) (short-convolved when configured), and the
        convolution's part of the decoding state: (its last K - 1 inputs,) or ()."""
        (q, k, v), tail = convolved(self.short_conv, self.q_proj(x), self.k_proj(x), self.v_proj(x),
                                    history=history)                 # (B, T, H*dh | n_kv*dh)
        k_kv, v_kv = (t.unflatten(-1, (self.n_kv, self.head_dim)).transpose(1, 2) for t in (k, v))  # (B, n_kv, T, dh)
        return self.split(q), k_kv, v_kv, () if tail is None else (tail,)

    def heads_and_cache(self, x: torch.Tensor, mask: torch.Tensor | None = None
                        ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """heads(x) (B, T, H, dh) and the decoding state after x: the keys and values of x, (B, n_kv, T,
        dh) each, then the short convolution's last inputs when there is one."""
        q, k_kv, v_kv, conv = self.projected(x)                      # (B, H | n_kv, T, dh)
        g = self.n_heads // self.n_kv
        k, v = k_kv, v_kv  # (B, H, T, dh) when n_kv == H: no copy, no Expand chain in an exported graph
        if g > 1:
            k, v = k_kv.repeat_interleave(g, dim=1), v_kv.repeat_interleave(g, dim=1)  # (B, H, T, dh)
        p = self.config.dropout if self.training else 0.0
        if self.config.impl == "sdpa" and self.causal and mask is None:
            # SDPA's own causal form: torch's kernel skips the future blocks, and the export's
            # translation (exporters.fused_attention) makes it ORT's causal GroupQueryAttention
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)  # (B, H, T, dh)
        elif self.config.impl == "sdpa":
            bias = self.bias(mask, x.shape[1], q)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=p)  # (B, H, T, dh)
        else:
            bias = self.bias(mask, x.shape[1], q)
            logits = (q @ k.transpose(-2, -1)) * self.scale          # (B, H, T, T)
            if bias is not None:
                logits = logits + bias
            probs = F.dropout(logits.softmax(dim=-1), p)             # (B, H, T, T)
            out = probs @ v                                          # (B, H, T, dh)
        return out.transpose(1, 2), (k_kv, v_kv, *conv)              # (B, T, H, dh)

    # -- decoding: a KV cache (B, n_kv, S, dh) that grows by one position per token --------------------
    def state_shapes(self, batch="B"):
        conv = [] if self.short_conv is None else [self.short_conv.state_shape(batch)]
        return kv_cache_shapes(batch, self.n_kv, self.head_dim) + conv

    def prefill_heads(self, x):
        return self.heads_and_cache(x)

    def step_heads(self, x_t, state, pos):
        B, g = x_t.shape[0], self.n_heads // self.n_kv
        q, k, v, conv = self.projected(x_t[:, None], *state[2:])     # (B, H | n_kv, 1, dh)
        q = q.reshape(B, self.n_kv, g, self.head_dim)                # (B, n_kv, g, dh): a query group per kv head
        k_cache, v_cache = torch.cat([state[0], k], 2), torch.cat([state[1], v], 2)  # (B, n_kv, S + 1, dh)
        o = attend_one(q, k_cache, v_cache, self.scale)              # (B, n_kv, g, dh)
        return o.reshape(B, self.n_heads, self.head_dim), (k_cache, v_cache, *conv)  # (B, H, dh)
