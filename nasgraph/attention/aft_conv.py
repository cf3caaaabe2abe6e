"""AFT-conv: per head i, a depthwise convolution with a learned filter w^i in R^s:

    Y^i = sigmoid(Q^i) * [conv1d(exp(K^i) * V^i, exp(w^i) - 1) + sum_t' exp(K^i_t') V^i_t']
                       / [conv1d(exp(K^i), exp(w^i) - 1) + sum_t' exp(K^i_t')]

i.e. AFT-local with a translation-invariant bias inside a window of `kernel` positions. conv1d is
cross-correlation over positions t - left .. t - left + s - 1 with left = (s - 1) // 2 (centred);
causal: left = s - 1 (only past and present) and prefix sums. O(T s d), unbounded. Decoding: running
sums plus the last s - 1 keys/values (see `_decode.AFTWindowDecoding`), fixed size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nasgraph.attention._blocks import aft_keys, aft_output
from nasgraph.attention._decode import AFTWindowDecoding
from nasgraph.attention.base import AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class AFTConvConfig(AttentionConfig):
    kernel: int = Field(7, ge=1)     # s: filter size of the per-head depthwise convolution


@register("aft_conv")
class AFTConv(AFTWindowDecoding):
    """Attention-free token mixing with per-head convolutional position biases."""

    Config = AFTConvConfig
    caps = Capabilities(linear=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.filters = nn.Parameter(torch.randn(self.n_heads, self.config.kernel) * 1e-2)  # w^i

    @property
    def window_size(self) -> int:
        return self.config.kernel

    def band_weights(self, pos, valid):
        band = (torch.exp(self.filters) - 1.0).repeat_interleave(self.head_dim, 0).T  # (s, C), per head
        return band.new_ones(()), band

    @property
    def left(self) -> int:
        """Positions before t covered by the filter."""
        s = self.config.kernel
        return s - 1 if self.causal else (s - 1) // 2

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        s = self.config.kernel
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)        # (B, T, C)
        ek = aft_keys(k, mask)                                            # (B, T, C)
        terms = torch.cat([ek * v, ek], -1)                               # (B, T, 2C): numerator, denominator
        total = terms.cumsum(1) if self.causal else terms.sum(1, keepdim=True)  # (B, T or 1, 2C)
        channels = terms.shape[-1]
        weight = (torch.exp(self.filters) - 1.0).repeat_interleave(self.head_dim, 0)  # (C, s), per head
        weight = weight.repeat(2, 1)[:, None, :]                          # (2C, 1, s): numerator, denominator
        padded = F.pad(terms.transpose(1, 2), [self.left, s - 1 - self.left])  # (B, 2C, T + s - 1)
        local = F.conv1d(padded, weight, groups=channels).transpose(1, 2)  # (B, T, 2C)
        return aft_output(q, *(total + local).chunk(2, -1), self.n_heads)  # (B, T, H, dh)
