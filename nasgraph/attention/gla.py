"""Gated linear attention (GLA, Yang et al. 2023, arXiv 2312.06635): a data-dependent decay per key dim,

    S_t = diag(a_t) S_{t-1} + k_t^T v_t,   o_t = q_t S_t / sqrt(dk),   log a_t = logsigmoid(x_t W_a) / tau,

then a per-head norm and a swish output gate. Causal only. The chunk form needs exact per-dimension
decays between the positions of a chunk, a (C, C, dk) tensor per chunk: hence the small default chunk.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import nn

from nasgraph.attention._recurrent_layer import Inputs, RecurrentAttention, RecurrentConfig
from nasgraph.attention.registry import register


class GLAConfig(RecurrentConfig):
    chunk: PositiveInt = 16          # memory of the training form grows with T * chunk * dk
    gate_temperature: float = Field(16.0, gt=0)  # tau: log a = logsigmoid(.) / tau keeps decays near 1


@register("gla")
class GatedLinearAttention(RecurrentAttention):
    """Linear attention whose state forgets per key dimension, at a rate read from the input."""

    Config = GLAConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.decay_proj = nn.Linear(self.d_model, self.inner)

    def inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        q, k, v, tail = self.conv_qkv(x, history)                      # (B, H, T, dh)
        g = self.split(F.logsigmoid(self.decay_proj(x))) / self.config.gate_temperature  # (B, H, T, dh)
        return Inputs(q=q * self.scale, k=k, v=v, g=g, conv_tail=tail)
