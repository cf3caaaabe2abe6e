"""Softmax (scaled dot-product) attention: softmax(Q K^T / sqrt(d) + mask) V."""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from nasgraph.attention.base import Attention, AttentionConfig, causal_bias, key_padding_bias
from nasgraph.attention.registry import register


class SoftmaxConfig(AttentionConfig):
    impl: Literal["sdpa", "math"] = "sdpa"  # sdpa = torch's fused kernel; math = explicit matmul-softmax
    dropout: float = 0.0


@register("softmax")
class SoftmaxAttention(Attention):
    """Full softmax attention, O(T^2 d); the baseline every other type approximates."""

    Config = SoftmaxConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def bias(self, mask: torch.Tensor | None, T: int, ref: torch.Tensor) -> torch.Tensor | None:
        """Additive bias broadcastable to (B, H, T, T), or None."""
        bias = key_padding_bias(mask, ref.dtype)                     # (B, 1, 1, T)
        if self.causal:
            causal = causal_bias(T, ref.device, ref.dtype)           # (T, T)
            bias = causal if bias is None else bias + causal         # (B, 1, T, T)
        return bias

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.qkv(x)                                        # (B, H, T, dh)
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
