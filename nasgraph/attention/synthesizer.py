"""Synthesizer attention (Tay et al. 2021): attention weights synthesised without query-key products.

    dense:  B_i = W2 ReLU(W1 x_i + b1) + b2  in R^{max_len} per head (the logits of row i),
    random: B   = R, a learned (max_len x max_len) logit matrix per head, independent of the input,
out = softmax(B[:T, :T] + masks) (x W_v). Bounded by max_len; a shorter input uses the first T rows and
columns. Padded keys and (causal form) future keys are masked on the logits.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasgraph.attention.base import Attention, AttentionConfig, Capabilities, causal_bias, key_padding_bias
from nasgraph.attention.registry import register


class SynthesizerConfig(AttentionConfig):
    mode: Literal["dense", "random"] = "dense"
    hidden: PositiveInt | None = None  # dense: width of the MLP's hidden layer (default d_model)


@register("synthesizer")
class SynthesizerAttention(Attention):
    """Attention with synthesised logits: dense (from each token alone) or random (learned)."""

    Config = SynthesizerConfig
    caps = Capabilities(causal=True, padding_mask=True, bounded=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        H, n = self.n_heads, self.max_len
        self.v_proj = nn.Linear(self.d_model, self.inner)
        if self.config.mode == "dense":
            hidden = self.config.hidden or self.d_model
            self.dense1 = nn.Linear(self.d_model, hidden)
            self.dense2 = nn.Linear(hidden, H * n)                     # row h*n + j: head h, key j
        else:
            self.random_logits = nn.Parameter(torch.randn(H, n, n) * 0.02)  # (H, n, n)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> synthesised logits (B, H, T, T) or (1, H, T, T)."""
        B, T, _ = x.shape
        H, n = self.n_heads, self.max_len
        if self.config.mode == "random":
            return self.random_logits[None, :, :T, :T]                 # (1, H, T, T)
        hidden = F.relu(self.dense1(x))                                # (B, T, hidden)
        w2 = self.dense2.weight.view(H, n, -1)[:, :T]                  # (H, T, hidden): used keys only
        b2 = self.dense2.bias.view(H, n)[:, :T]                        # (H, T)
        return torch.einsum("bth,ksh->bkts", hidden, w2) + b2[None, :, None, :]  # (B, H, T, T)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        logits = self.logits(x)                                        # (B|1, H, T, T)
        bias = key_padding_bias(mask, x.dtype)                         # (B, 1, 1, T) or None
        if bias is not None:
            logits = logits + bias
        if self.causal:
            logits = logits + causal_bias(T, x.device, x.dtype)
        v = self.split(self.v_proj(x))                                 # (B, H, T, dh)
        out = logits.softmax(dim=-1) @ v                               # (B, H, T, dh)
        return out.transpose(1, 2)                                     # (B, T, H, dh)
