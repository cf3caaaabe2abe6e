"""DCMHA: dynamically composable multi-head attention (Xiao et al. 2024, arXiv 2405.08553).

Softmax attention whose heads are mixed, per (t, s), by Compose on the head vector a = A[:, t, s]:

    Compose(a) = a W_b + sum_r (a . qw1[t, r]) qw2[t, r] + sum_r (a . kw1[s, r]) kw2[s, r]
                 + a * qg[t] + a * kg[s]

with W_b = I (+ a static N x N matrix if static_mix), applied to the logits before the mask and
softmax ("pre") and to the probabilities after ("post"). Query-wise weights come from x_t, key-wise
from x_s: h = GELU(x W1), [w1; w2] = h W2 (w1 RMS-normalised over heads), gates g = tanh(x Wd).
Each low-rank term is two head contractions (BNTS x BTN -> BTS -> BNTS); no per-(t, s) N x N matrix
is ever formed. Extra cost about (4R + 2) N T S multiply-adds per compose. Eager mode runs by
query chunks (every term is row-separable), so memory is O(N chunk T) and the causal form skips the
future keys; under export the same math runs as one block. Decoding caches the layer's inputs (B, S, D)
and recomputes the keys, values and key-wise compose weights of the cache for each new row: exact,
O(S d (d + K)) per token (more than a softmax KV cache, far less than a full forward).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register

STAGES = ("pre", "post")
CHUNK_ELEMENTS = 1 << 18  # eager mode: query rows per chunk such that one (B, N, rows, T) plane is ~1 MB


class DCMHAConfig(AttentionConfig):
    rank: int = Field(2, ge=1)          # R: rank of the query-wise and key-wise dynamic terms
    hidden_mult: int = Field(4, ge=1)   # K = hidden_mult * n_heads: width of the dynamic-weight MLP
    static_mix: bool = False            # add a learned static N x N head mix to W_b = I
    pre: bool = True                    # compose the logits (before softmax)
    post: bool = True                   # compose the probabilities (after softmax)


class Composition:
    """The dynamic weights of one compose stage, laid out for head contractions over (B, N, T, S)."""

    def __init__(self, w1: torch.Tensor, w2: torch.Tensor, gates: torch.Tensor, static: torch.Tensor | None):
        # w1, w2: (B, T, 2, R, N) for sides (query, key); gates: (B, T, 2, N)
        self.qw1, self.kw1 = w1.permute(2, 0, 3, 4, 1).unbind(0)        # (B, R, N, T) each
        self.qw2, self.kw2 = w2.permute(2, 0, 3, 4, 1).unbind(0)        # (B, R, N, T) each
        self.qg, self.kg = gates.permute(2, 0, 3, 1).unbind(0)          # (B, N, T) each
        self.static = static                                            # (N, N) or None

    def __call__(self, a: torch.Tensor, rows: slice, keys: slice) -> torch.Tensor:
        """a: (B, N, t, s) for query rows `rows` and keys `keys` -> Compose(a), same shape.

        Head contractions run as loops over the N heads with fused multiply-adds into one output
        buffer: about 5 passes over a (B, N, t, s) tensor per rank, no (B, N, t, s) temporaries.
        """
        N = a.shape[1]
        qw1, qw2, qg = self.qw1[..., rows], self.qw2[..., rows], self.qg[..., rows]  # query side: (.., t)
        kw1, kw2, kg = self.kw1[..., keys], self.kw2[..., keys], self.kg[..., keys]  # key side: (.., s)
        out = a * (1.0 + qg[..., :, None])                                # identity + query gate
        out.addcmul_(a, kg[..., None, :])                                 # + key gate
        if self.static is not None:
            for n in range(N):                                            # + a W_static
                out.addcmul_(a[:, n:n + 1], self.static[n].view(1, N, 1, 1))
        for r in range(qw1.shape[1]):
            hidden_q = a[:, 0] * qw1[:, r, 0, :, None]                    # (B, t, s): a . qw1[t, r]
            hidden_k = a[:, 0] * kw1[:, r, 0, None, :]                    # (B, t, s): a . kw1[s, r]
            for n in range(1, N):
                hidden_q.addcmul_(a[:, n], qw1[:, r, n, :, None])
                hidden_k.addcmul_(a[:, n], kw1[:, r, n, None, :])
            out.addcmul_(hidden_q[:, None], qw2[:, r, :, :, None])        # + (a . qw1) qw2[t, r]
            out.addcmul_(hidden_k[:, None], kw2[:, r, :, None, :])        # + (a . kw1) kw2[s, r]
        return out


@register("dcmha")
class DCMHA(Attention):
    """Softmax attention with dynamic cross-head composition of logits and probabilities."""

    Config = DCMHAConfig
    caps = Capabilities(decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        c, N, D = self.config, self.n_heads, self.d_model
        K = c.hidden_mult * N
        # four weight sets: {pre, post} x {query, key}; inits follow the authors' Jax code
        self.dyn_hidden = nn.Linear(D, 4 * K, bias=False)                             # W1
        nn.init.normal_(self.dyn_hidden.weight, std=math.sqrt(2.0 / (D + K)))
        self.dyn_out = nn.Parameter(torch.randn(4, K, 2 * c.rank, N)
                                    * (math.sqrt(1.0 / K) * 2.0 / (N + c.rank) * 0.01))  # W2
        self.dyn_gate = nn.Linear(D, 4 * N, bias=False)                               # Wd
        nn.init.normal_(self.dyn_gate.weight, std=math.sqrt(2.0 / (D + N)) * 0.005)
        self.static_mix = (nn.Parameter(torch.randn(2, N, N) * (math.sqrt(1.0 / N) * 0.1))
                           if c.static_mix else None)

    def compositions(self, x: torch.Tensor) -> dict[str, Composition]:
        """Dynamic weights from x: one Composition per enabled stage."""
        B, T, _ = x.shape
        R, N = self.config.rank, self.n_heads
        hidden = F.gelu(self.dyn_hidden(x)).unflatten(-1, (4, -1))                  # (B, T, 4, K)
        w = torch.einsum("btck,ckin->btcin", hidden, self.dyn_out)                  # (B, T, 4, 2R, N)
        w1, w2 = w[..., :R, :], w[..., R:, :]                                       # (B, T, 4, R, N)
        w1 = w1 * torch.rsqrt(w1.pow(2).mean(-1, keepdim=True) + 1e-6)              # RMS over heads
        gates = torch.tanh(self.dyn_gate(x)).unflatten(-1, (4, N))                  # (B, T, 4, N)
        out = {}
        for i, stage in enumerate(STAGES):
            if getattr(self.config, stage):
                sl = slice(2 * i, 2 * i + 2)                                # (query, key) of the stage
                static = None if self.static_mix is None else self.static_mix[i]
                out[stage] = Composition(w1[:, :, sl], w2[:, :, sl], gates[:, :, sl], static)
        return out

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, compose: dict[str, Composition],
               mask: torch.Tensor | None, start, stop, keys) -> torch.Tensor:
        """Composed attention of query rows start..stop-1 over keys 0..keys-1: (B, N, rows, dh)."""
        rows, cols = slice(start, stop), slice(0, keys)
        logits = (q[:, :, rows] @ k[:, :, cols].transpose(-2, -1)) * self.scale    # (B, N, t, s)
        if "pre" in compose:
            logits = compose["pre"](logits, rows, cols)
        allowed = None if mask is None else mask[:, None, None, cols]              # (B, 1, 1, s)
        if self.causal:
            pos = torch.arange(keys, device=q.device)
            past = pos[None, :] <= pos[start:stop, None]                             # (t, s)
            allowed = past if allowed is None else allowed & past
        if allowed is not None:
            logits = logits.masked_fill(~allowed, NEG_INF)
        probs = logits.softmax(-1)                                                   # (B, N, t, s)
        if "post" in compose:
            probs = compose["post"](probs, rows, cols)
        return probs @ v[:, :, cols]                                                 # (B, N, t, dh)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        T = x.shape[1]
        q, k, v = self.qkv(x)                                                       # (B, N, T, dh)
        compose = self.compositions(x)
        if torch.compiler.is_exporting():                           # one block, so T stays symbolic
            out = self.attend(q, k, v, compose, mask, 0, T, T)                      # (B, N, T, dh)
        else:  # eager: query chunks keep the (B, N, t, s) planes in cache; causal skips future keys
            step = max(1, CHUNK_ELEMENTS // (x.shape[0] * self.n_heads * T))
            out = torch.cat([self.attend(q, k, v, compose, mask, a, min(a + step, T),
                                         min(a + step, T) if self.causal else T)
                             for a in range(0, T, step)], 2)                        # (B, N, T, dh)
        return out.transpose(1, 2)                                                   # (B, T, N, dh)

    # -- decoding: a cache of the layer inputs (B, S, D) --------------------------------------------------
    def state_shapes(self, batch="B"):
        return [("x_cache", (batch, "S", self.d_model))]

    def prefill_heads(self, x):
        return self.heads(x), (x,)

    def step_heads(self, x_t, state, pos):
        x = torch.cat([state[0], x_t[:, None]], 1)                    # (B, S + 1, D): positions 0 .. pos
        T = x.shape[1]
        q, k, v = self.qkv(x)                                          # (B, N, S + 1, dh)
        out = self.attend(q, k, v, self.compositions(x), None, T - 1, T, T)  # (B, N, 1, dh): the last row
        return out[:, :, 0], (x,)                                      # (B, N, dh)
