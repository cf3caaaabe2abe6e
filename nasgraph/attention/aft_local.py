"""AFT-local: AFT-full whose position bias w[t, t'] = (u v^T)[t, t'] only where |t - t'| < window, 0 outside.

Outside the window the weight is exp(0) = 1 (not 0), so every position still sees every other. Hence
sum_t' exp(K_t' + w) X_t' = sum_t' exp(K_t') X_t' + sum_{|t-t'|<s} (exp(w) - 1) exp(K_t') X_t': a global
(causal: prefix) sum plus a banded correction computed by blocks of `window` positions against their
neighbour blocks. O(T s d) time and memory; bounded by max_len (u, v are position-sized). Decoding:
running sums plus the last s - 1 keys/values (see `_decode.AFTWindowDecoding`), fixed size.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from nasgraph.attention._blocks import (aft_keys, aft_output, from_blocks, neighbour_blocks,
                                        relative_lag, to_blocks)
from nasgraph.attention._decode import AFTWindowDecoding
from nasgraph.attention.base import AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class AFTLocalConfig(AttentionConfig):
    window: int = Field(32, ge=1)    # s: position biases live where |t - t'| < s (paper: AFT-local-32)
    pos_dim: int = Field(64, ge=1)   # d': rank of the factorized position biases w = u v^T


@register("aft_local")
class AFTLocal(AFTWindowDecoding):
    """Attention-free token mixing with position biases inside a local window."""

    Config = AFTLocalConfig
    caps = Capabilities(bounded=True, linear=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.pos_u = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)
        self.pos_v = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)

    @property
    def window_size(self) -> int:
        return self.config.window

    def band_weights(self, pos, valid):
        """w[pos, j] = u_pos . v_j on the last s positions, rescaled by the heads() form's row shift."""
        s = self.config.window
        at = (pos - s + 1 + torch.arange(s, device=pos.device)).clamp_min(0)  # (s,)
        w = self.pos_v.index_select(0, at) @ self.pos_u.index_select(0, pos[None])[0]  # (s,)
        w = torch.where(valid, w, w.new_zeros(()))
        m = w.amax(0).clamp_min(0.0)                                      # the row's shift (a dim: ONNX export)
        outside = torch.exp(-m)                                           # weight off the band
        return outside, ((torch.exp(w - m) - outside) * valid)[:, None]   # (s, 1)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        self.check_length(x.shape[1])
        T, s = x.shape[1], self.config.window
        after = 0 if self.causal else 1
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)        # (B, T, C)
        ek = aft_keys(k, mask)                                            # (B, T, C)
        terms = torch.cat([ek * v, ek], -1)                               # (B, T, 2C): numerator, denominator
        total = terms.cumsum(1) if self.causal else terms.sum(1, keepdim=True)  # (B, T or 1, 2C)
        # banded position biases, by blocks: w[t, t'] for t' in the neighbour blocks of t's block
        ub = to_blocks(self.pos_u[:T], s)                                 # (nb, s, d')
        vb = neighbour_blocks(to_blocks(self.pos_v[:T], s), 1, after)     # (nb, L, d')
        w = ub @ vb.transpose(-1, -2)                                     # (nb, s, L)
        lag = relative_lag(s, 1, after, x.device)                         # (s, L), same for every block
        in_band = (lag.abs() < s) & (lag >= 0) if self.causal else lag.abs() < s  # (s, L)
        # stabilise row t: subtract m_t = max(0, max_band w[t, :]) from every exponent (cancels in the ratio)
        w = w.masked_fill(~in_band, 0.0)
        m = w.amax(-1, keepdim=True).clamp_min(0.0)                       # (nb, s, 1)
        outside = torch.exp(-m)                                           # (nb, s, 1): weight off the band
        band = (torch.exp(w - m) - outside) * in_band                     # (nb, s, L): exp(w) - 1, rescaled
        near = neighbour_blocks(to_blocks(terms, s), 1, after)            # (B, nb, L, 2C)
        correction = torch.einsum("nql,bnlc->bnqc", band, near)           # (B, nb, s, 2C)
        sums = from_blocks(outside, T) * total + from_blocks(correction, T)  # (B, T, 2C)
        return aft_output(q, *sums.chunk(2, -1), self.n_heads)            # (B, T, H, dh)
