"""Linear Transformer attention (Katharopoulos et al. 2020): phi(x) = elu(x) + 1,

    out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j)),

with j <= i in the causal form (chunked prefix sums, see `_kernels`). O(T d^2) time, O(T d) memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveInt

from nasgraph.attention._kernels import linear_attention, pad_to_chunks
from nasgraph.attention.base import EPS, Attention, AttentionConfig, Capabilities, zero_padded
from nasgraph.attention.registry import register


class LinearConfig(AttentionConfig):
    chunk: PositiveInt = 64  # causal form: positions per chunk of the prefix sum (speed/memory trade-off only)


@register("linear")
class LinearAttention(Attention):
    """Kernelised attention with the elu+1 feature map."""

    Config = LinearConfig
    caps = Capabilities(causal=True, padding_mask=True, linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        if self.causal:
            x, mask = pad_to_chunks(x, mask, self.config.chunk)       # (B, Tc, d): whole chunks
        q, k, v = self.qkv(x)                                          # (B, H, Tc, dh)
        q_feat = F.elu(q).add_(1.0)                                    # (B, H, Tc, dh) > 0
        k_feat = zero_padded(F.elu(k).add_(1.0), mask)                 # (B, H, Tc, dh), 0 at padding
        out = linear_attention(q_feat, k_feat, v, causal=self.causal, eps=EPS,
                               chunk=self.config.chunk)                # (B, H, Tc, dh)
        return out[:, :, :T].transpose(1, 2)                           # (B, T, H, dh)
