"""Synthesizer attention (Tay et al. 2021): attention weights synthesised without query-key products.

    dense:  B_i = W2 ReLU(W1 x_i + b1) + b2  in R^{max_len} per head (the logits of row i; the
            hidden layer has `hidden` units per head, so a dense head costs what Q K^T costs),
    random: B   = R, a learned (max_len x max_len) logit matrix per head, independent of the input,
out = softmax(B[:T, :T] + masks) (x W_v). Bounded by max_len; a shorter input uses the first T rows and
columns. Padded keys and (causal form) future keys are masked on the logits. Decoding: a value cache
(growing) and row pos of the synthesised logits.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import PositiveInt
from torch import nn

from nasgraph.attention._decode import as_position
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities, causal_bias, key_padding_bias
from nasgraph.attention.registry import register


class SynthesizerConfig(AttentionConfig):
    mode: Literal["dense", "random"] = "dense"
    hidden: PositiveInt | None = None  # dense: hidden units per head of the MLP (default head_dim)


@register("synthesizer")
class SynthesizerAttention(Attention):
    """Attention with synthesised logits: dense (from each token alone) or random (learned)."""

    Config = SynthesizerConfig
    caps = Capabilities(causal=True, padding_mask=True, bounded=True, decodable=True)

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

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        v = self.split(self.v_proj(x))                                 # (B, H, T, dh)
        bias = key_padding_bias(mask, x.dtype)                         # (B, 1, 1, T) or None
        if self.causal:
            causal = causal_bias(T, x.device, x.dtype)                 # (T, T)
            bias = causal if bias is None else bias + causal           # (B, 1, T, T)
        if self.config.mode == "random":
            logits = self.random_logits[None, :, :T, :T]               # (1, H, T, T)
            if bias is not None:
                logits = logits + bias
            out = logits.softmax(dim=-1) @ v                           # (B, H, T, dh)
        else:
            out = self.dense_attention(x, v, bias)                     # (B, H, T, dh)
        return out.transpose(1, 2)                                     # (B, T, H, dh)

    def dense_attention(self, x: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """softmax(hidden_i . W2_h[j] + b2_h[j] + bias) V through torch's fused kernel.

        The logits are a dot product of a per-token "query" [hidden_i, 1] with a per-position "key"
        [W2_h[j], b2_h[j]], so SDPA computes them without materialising (B, H, T, T). b2 rides in
        the key rather than in attn_mask (a mask that needs grad sends SDPA to its unfused path and
        breaks export), and q, k, v are zero-padded to one width so the fused path applies.
        """
        B, T, _ = x.shape
        dh = v.shape[-1]
        hidden = F.relu(self.dense1(x)).view(B, T, self.n_heads, -1).transpose(1, 2)  # (B, H, T, e)
        query = torch.cat([hidden, torch.ones_like(hidden[..., :1])], dim=-1)         # (B, H, T, e+1)
        key = torch.cat([self.dense2_weight[:, :T], self.dense2_bias[:, :T, None]], dim=-1)  # (H, T, e+1)
        width = max(query.shape[-1], dh)
        query = F.pad(query, (0, width - query.shape[-1]))            # zero columns: same logits
        key = F.pad(key, (0, width - key.shape[-1]))[None].expand(B, -1, -1, -1)   # (B, H, T, w)
        v = F.pad(v, (0, width - dh))                                  # (B, H, T, w)
        out = F.scaled_dot_product_attention(query, key, v, attn_mask=bias, scale=1.0)  # (B, H, T, w)
        return out[..., :dh]                                           # (B, H, T, dh)

    # -- decoding: a value cache (B, H, S, dh) and row pos of the logits ---------------------------------
    def state_shapes(self, batch="B"):
        return [("v_cache", (batch, self.n_heads, "S", self.head_dim))]

    def prefill_heads(self, x):
        return self.heads(x), (self.split(self.v_proj(x)),)

    def step_heads(self, x_t, state, pos):
        B = x_t.shape[0]
        pos = as_position(pos, x_t)
        v = self.v_proj(x_t).view(B, self.n_heads, 1, self.head_dim)   # (B, H, 1, dh)
        v_cache = torch.cat([state[0], v], 2)                          # (B, H, S + 1, dh)
        S1 = v_cache.shape[2]                                          # positions 0 .. pos
        if self.config.mode == "random":
            logits = self.random_logits.index_select(1, pos[None])[None, :, :, :S1]  # (1, H, 1, S + 1)
        else:
            hidden = F.relu(self.dense1(x_t)).view(B, self.n_heads, 1, -1)  # (B, H, 1, e)
            logits = hidden @ self.dense2_weight[:, :S1].transpose(-2, -1) + self.dense2_bias[:, None, :S1]
        return (logits.softmax(-1) @ v_cache)[:, :, 0], (v_cache,)    # (B, H, dh)
