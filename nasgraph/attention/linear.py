"""Linear Transformer attention (Katharopoulos et al. 2020): phi(x) = elu(x) + 1,

    out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / (phi(q_i) . sum_j phi(k_j)),

with j <= i in the causal form (chunked prefix sums, see `_kernels`). O(T d^2) time, O(T d) memory.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt

from nasgraph.attention._kernels import FeatureMapAttention
from nasgraph.attention.base import AttentionConfig
from nasgraph.attention.registry import register


class LinearConfig(AttentionConfig):
    chunk: PositiveInt = 64  # causal form: positions per chunk of the prefix sum (speed/memory trade-off only)
    block: int = Field(1024, ge=0)  # causal form: longer inputs run by blocks of about this many positions,
    #                                the state carried (cache-sized tensors, see `_by_blocks`; exported: always); 0: never


@register("linear")
class LinearAttention(FeatureMapAttention):
    """Kernelised attention with the elu+1 feature map."""

    Config = LinearConfig
    position_free = True

    def features(self, q: torch.Tensor, k: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        return F.elu(q).add_(1.0), F.elu(k).add_(1.0)                 # (B, H, Tc, dh) each, > 0
