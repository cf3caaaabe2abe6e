"""AFT-full: Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w[t,t']) V_t' / sum_t' exp(K_t' + w[t,t']).

Learned position biases w = u v^T, u, v in R^{max_len x pos_dim}, init N(0, 1e-2) (bounded by
max_len). exp(K_t' + w) = exp(w) exp(K_t'), so both sums are one (T, T) @ (T, 2C) product: O(T^2 d)
time, never a (T, T, d) tensor. Causal: t' <= t.

Eager mode runs the product by chunks of CHUNK query rows, so memory stays O(CHUNK T + T d) and the
causal form skips the future keys (half the work); under export (where a Python loop over T would
freeze the sequence length) the same math runs as one (T, T) product. Decoding: a cache of the raw
keys and values (growing), O(S d) per token.
"""
from __future__ import annotations

import torch
from pydantic import Field
from torch import nn

from nasgraph.attention._blocks import aft_keys, aft_output
from nasgraph.attention._decode import as_position
from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register


CHUNK = 512  # query rows per chunk in eager mode


class AFTFullConfig(AttentionConfig):
    pos_dim: int = Field(64, ge=1)   # d': rank of the factorized position biases w = u v^T


@register("aft_full")
class AFTFull(Attention):
    """Attention-free token mixing with learned pairwise position biases."""

    Config = AFTFullConfig
    caps = Capabilities(bounded=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.pos_u = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)
        self.pos_v = nn.Parameter(torch.randn(self.max_len, self.config.pos_dim) * 1e-2)

    def position_weights(self, start: int, stop: int, keys: int) -> torch.Tensor:
        """Row-normalised exp(w) of query rows start..stop-1 over keys 0..keys-1, 0 on future keys.

        softmax(w) = exp(w - rowmax) / rowsum: the row factor cancels in AFT's ratio, and the fused
        kernel subtracts the max and exponentiates in one pass over each row. (rows, keys).
        """
        w = self.pos_u[start:stop] @ self.pos_v[:keys].T                  # (rows, keys)
        if self.causal:
            rows = torch.arange(start, stop, device=w.device)[:, None]
            w = w.masked_fill(torch.arange(keys, device=w.device)[None, :] > rows, NEG_INF)
        return w.softmax(-1)                                              # (rows, keys)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        self.check_length(T)
        q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)        # (B, T, C)
        ek = aft_keys(k, mask)                                            # (B, T, C)
        terms = torch.cat([ek * v, ek], -1)                               # (B, T, 2C): numerator, denominator
        if torch.compiler.is_exporting():
            sums = torch.einsum("ts,bsc->btc", self.position_weights(0, T, T), terms)  # (B, T, 2C)
        else:
            chunks = []
            for start in range(0, T, CHUNK):
                stop = min(start + CHUNK, T)
                keys = stop if self.causal else T
                weights = self.position_weights(start, stop, keys)        # (rows, keys)
                chunks.append(torch.einsum("ts,bsc->btc", weights, terms[:, :keys]))  # (B, rows, 2C)
            sums = torch.cat(chunks, 1)                                   # (B, T, 2C)
        return aft_output(q, *sums.chunk(2, -1), self.n_heads)            # (B, T, H, dh)

    # -- decoding: a cache of the raw keys and values (B, S, C) ------------------------------------------
    def state_shapes(self, batch="B"):
        return [("k_cache", (batch, "S", self.inner)), ("v_cache", (batch, "S", self.inner))]

    def prefill_heads(self, x):
        return self.heads(x), (self.k_proj(x), self.v_proj(x))

    def step_heads(self, x_t, state, pos):
        pos = as_position(pos, x_t)
        k_cache = torch.cat([state[0], self.k_proj(x_t)[:, None]], 1)  # (B, S + 1, C): positions 0 .. pos
        v_cache = torch.cat([state[1], self.v_proj(x_t)[:, None]], 1)
        w = self.pos_v[:k_cache.shape[1]] @ self.pos_u.index_select(0, pos[None])[0]  # (S + 1,)
        ek = aft_keys(k_cache, None)                                    # (B, S + 1, C)
        terms = torch.cat([ek * v_cache, ek], -1)                      # (B, S + 1, 2C)
        sums = torch.einsum("s,bsc->bc", w.softmax(-1), terms)         # (B, 2C)
        return aft_output(self.q_proj(x_t), *sums.chunk(2, -1), self.n_heads), (k_cache, v_cache)
