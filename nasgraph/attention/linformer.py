"""Linformer attention (Wang et al. 2020): softmax(Q (E K)^T / sqrt(d)) (F V), E, F in R^{k x n}.

The length axis of keys and values is projected to k rows by learned E, F (one pair per layer, shared
by the heads), so the cost is O(T k d). E and F have max_len columns (the type is bounded); a shorter
input uses the first T columns. Padded keys and values are zeroed before projecting, so padding never
leaks. There is no causal form: every projected row mixes all positions.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasgraph.attention.base import Attention, AttentionConfig, Capabilities, zero_padded
from nasgraph.attention.registry import register


class LinformerConfig(AttentionConfig):
    k: PositiveInt = 64  # projected length (LRA: 16..256)


@register("linformer")
class LinformerAttention(Attention):
    """Low-rank attention over k learned mixtures of the positions."""

    Config = LinformerConfig
    caps = Capabilities(causal=False, padding_mask=True, bounded=True, linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        k, n = self.config.k, self.max_len
        bound = 1.0 / math.sqrt(k)
        self.E = nn.Parameter(torch.empty(k, n).uniform_(-bound, bound))  # (k, n) keys
        self.F = nn.Parameter(torch.empty(k, n).uniform_(-bound, bound))  # (k, n) values

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        q, k, v = self.qkv(x)                                          # (B, H, T, dh)
        k, v = zero_padded(k, mask), zero_padded(v, mask)              # padded tokens contribute 0
        k_proj = self.E[:, :T] @ k                                     # (B, H, k, dh)
        v_proj = self.F[:, :T] @ v                                     # (B, H, k, dh)
        out = F.scaled_dot_product_attention(q, k_proj, v_proj)        # (B, H, T, dh) softmax over k
        return out.transpose(1, 2)                                     # (B, T, H, dh)
