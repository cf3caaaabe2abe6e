"""Synthesizer attention (Tay et al. 2021): attention weights synthesised without query-key products.

    dense:  B_i = W2 ReLU(W1 x_i + b1) + b2  in R^{max_len} per head (the logits of row i; the
            hidden layer has `hidden` units per head, so a dense head costs what Q K^T costs),
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
    hidden: PositiveInt | None = None  # dense: hidden units per head of the MLP (default head_dim)


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
            hidden = self.config.hidden or self.head_dim
            bound = hidden ** -0.5
            self.dense1 = nn.Linear(self.d_model, H * hidden)          # per-head hidden layers
            self.dense2_weight = nn.Parameter(torch.empty(H, n, hidden).uniform_(-bound, bound))
            self.dense2_bias = nn.Parameter(torch.empty(H, n).uniform_(-bound, bound))
        else:
            self.random_logits = nn.Parameter(torch.randn(H, n, n) * 0.02)  # (H, n, n)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, d_model) -> synthesised logits (B, H, T, T) or (1, H, T, T)."""
        B, T, _ = x.shape
        H = self.n_heads
        if self.config.mode == "random":
            return self.random_logits[None, :, :T, :T]                 # (1, H, T, T)
        hidden = F.relu(self.dense1(x)).view(B, T, H, -1).transpose(1, 2)  # (B, H, T, e)
        hidden = torch.cat([hidden, torch.ones_like(hidden[..., :1])], dim=-1)  # (B, H, T, e+1)
        w2 = torch.cat([self.dense2_weight[:, :T], self.dense2_bias[:, :T, None]], dim=-1)  # (H, T, e+1)
        return hidden @ w2.transpose(-2, -1)                           # (B, H, T, T), b2 folded in

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        logits = self.logits(x)                                        # (B|1, H, T, T)
        bias = key_padding_bias(mask, x.dtype)                         # (B, 1, 1, T) or None
        if self.causal:
            causal = causal_bias(T, x.device, x.dtype)                 # (T, T)
            bias = causal if bias is None else bias + causal           # (B, 1, T, T): one pass below
        if bias is not None:
            logits = logits + bias
        v = self.split(self.v_proj(x))                                 # (B, H, T, dh)
        out = logits.softmax(dim=-1) @ v                               # (B, H, T, dh)
        return out.transpose(1, 2)                                     # (B, T, H, dh)
