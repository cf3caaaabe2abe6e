"""A Mamba-2 selective state-space mixer in its SSD form (Dao & Gu 2024, arXiv 2405.21060):

    S_t = a_t S_{t-1} + dt_t B_t^T x_t,   y_t = C_t S_t + D_h x_t,
    dt_t = softplus(x W_dt + dt_bias_h),   log a_t = -exp(A_h) dt_t      (a scalar decay per head),

with B_t, C_t in R^N shared by all heads (one group), x_t the head's value; then the per-head norm and
the z gate (norm before the gate, where Mamba-2 gates first). Mamba-2's short causal convolution
over x, B, C (then SiLU) is the option `short_conv: 4` (off by default; dt reads x unconvolved, as in
Mamba-2). Causal only; the state per head is (d_state, head_dim).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasgraph.attention._recurrent_layer import Inputs, RecurrentAttention, RecurrentConfig
from nasgraph.attention.gated_deltanet import mamba_gate_parameters
from nasgraph.attention.registry import register


class SSDConfig(RecurrentConfig):
    d_state: PositiveInt = 64  # N: width of B_t and C_t, the rows of each head's state


@register("ssd")
class SSD(RecurrentAttention):
    """Selective state space (scalar decay per head), computed as chunked decayed linear attention."""

    Config = SSDConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        N = self.config.d_state
        self.b_proj, self.c_proj = nn.Linear(self.d_model, N), nn.Linear(self.d_model, N)
        self.v_proj = nn.Linear(self.d_model, self.inner)
        self.dt_proj = nn.Linear(self.d_model, self.n_heads)
        self.A_log, self.dt_bias = mamba_gate_parameters(self.n_heads)
        self.D = nn.Parameter(torch.ones(self.n_heads))
        self.conv_over(self.inner + 2 * N)

    @property
    def key_dim(self) -> int:
        return self.config.d_state

    def inputs(self, x: torch.Tensor, history: torch.Tensor | None = None) -> Inputs:
        B, T, _ = x.shape
        H = self.n_heads
        dt = F.softplus(self.dt_proj(x) + self.dt_bias).transpose(1, 2)[..., None]  # (B, H, T, 1)
        g = -torch.exp(self.A_log)[:, None, None] * dt                # (B, H, T, 1)
        (xv, Bt, Ct), tail = self.convolved(self.v_proj(x), self.b_proj(x), self.c_proj(x), history=history)
        xv = self.split(xv)                                            # (B, H, T, dh)
        k = Bt[:, None].expand(B, H, T, -1)                            # (B, H, T, N)
        q = Ct[:, None].expand(B, H, T, -1)                            # (B, H, T, N)
        return Inputs(q=q, k=k, v=xv * dt, g=g, skip=self.D[:, None, None] * xv, shared=True, conv_tail=tail)
