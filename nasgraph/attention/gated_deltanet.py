"""Gated DeltaNet (Yang et al. 2024, arXiv 2412.06464): the delta rule with a data-dependent decay,

    S_t = a_t (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t,   o_t = q_t S_t,
    log a_t = -exp(A_h) softplus(x_t W_a + dt_h)     (Mamba-2's gate, one scalar per head),

q, k L2-normalised, b_t = sigmoid(x_t W_b); per-head norm and swish gate after. Causal only.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from nasgraph.attention._recurrent_layer import Inputs
from nasgraph.attention.deltanet import DeltaNet, DeltaNetConfig
from nasgraph.attention.registry import register


class GatedDeltaNetConfig(DeltaNetConfig):
    pass


def mamba_gate_parameters(n_heads: int) -> tuple[nn.Parameter, nn.Parameter]:
    """A_log (H,) = log(1 .. 16) spread over heads, dt_bias (H,) = softplus^-1 of dt in [1e-3, 1e-1]."""
    a = torch.linspace(1.0, 16.0, n_heads) if n_heads > 1 else torch.ones(1)
    dt = (torch.exp(torch.linspace(math.log(1e-3), math.log(1e-1), n_heads)) if n_heads > 1
          else torch.full((1,), 1e-2))
    return nn.Parameter(a.log()), nn.Parameter(dt + torch.log(-torch.expm1(-dt)))


@register("gated_deltanet")
class GatedDeltaNet(DeltaNet):
    """Delta rule plus a per-head forgetting gate: it can both overwrite one memory and fade all."""

    Config = GatedDeltaNetConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.decay_proj = nn.Linear(self.d_model, self.n_heads)
        self.A_log, self.dt_bias = mamba_gate_parameters(self.n_heads)

    def inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        inp = self.delta_inputs(x, history)
        dt = F.softplus(self.decay_proj(x) + self.dt_bias)             # (B, T, H)
        inp.g = (-torch.exp(self.A_log) * dt).transpose(1, 2)[..., None]  # (B, H, T, 1)
        return inp
