"""DeltaNet (Schlag et al. 2021; chunked by Yang et al. 2024, arXiv 2406.06484): the delta rule,

    S_t = (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t,   o_t = q_t S_t,

with q, k L2-normalised per head and b_t = sigmoid(x_t W_b) per head: each step overwrites the value
stored under k_t instead of adding to it. Per-head norm and swish gate after. Causal only.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasgraph.attention._recurrent_layer import Inputs, RecurrentAttention, RecurrentConfig
from nasgraph.attention.registry import register


class DeltaNetConfig(RecurrentConfig):
    chunk: PositiveInt = 32  # the chunk form inverts a (C, C) triangle per chunk: C steps


@register("deltanet")
class DeltaNet(RecurrentAttention):
    """Delta-rule linear attention (no decay)."""

    Config = DeltaNetConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.beta_proj = nn.Linear(self.d_model, self.n_heads)

    def delta_inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        q, k, v, tail = self.conv_qkv(x, history)                      # (B, H, T, dh)
        beta = torch.sigmoid(self.beta_proj(x)).transpose(1, 2)[..., None]  # (B, H, T, 1)
        return Inputs(q=F.normalize(q, dim=-1), k=F.normalize(k, dim=-1), v=v, beta=beta, conv_tail=tail)

    def inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        return self.delta_inputs(x, history)
