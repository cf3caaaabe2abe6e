"""Reformer LSH attention (Kitaev et al. 2020), with chunking that keeps causality and padding exact.

Shared query-keys: keys are the queries scaled to unit length. Angular LSH: a fixed random rotation R
(dh x n_buckets/2, a buffer) hashes h(q) = argmax([q R, -q R]). Positions are sorted by
(bucket, position) and cut into chunks of C; a query attends to the keys of its own bucket in its
chunk and the chunk before, never to itself unless nothing else is visible (the Reformer rule).
Several hash rounds are combined by their log-sum-exp weights.

Two deviations keep the contract exact:
- padded tokens go to an extra bucket sorted after all real ones, so they never share a bucket with
  a real query and the real tokens' sorted order does not depend on them;
- causal form: a query sees same-bucket keys at most C places back in the sorted order. The plain
  Reformer chunk boundaries depend on how many *future* tokens sort before a query, so its causal
  form leaks; the rank within one's own bucket depends only on earlier tokens.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveInt, field_validator
from torch import nn

from nasgraph.attention._decode import kv_cache_shapes
from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities
from nasgraph.attention.registry import register

SELF_LOGIT = -1e5  # the Reformer's value for attending to oneself: used only when nothing else is visible


class ReformerConfig(AttentionConfig):
    n_buckets: PositiveInt = 10  # even (rotations +-R); LRA uses 10
    chunk: PositiveInt = 10      # LRA uses 10
    n_hashes: PositiveInt = 1    # hash rounds

    @field_validator("n_buckets")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"n_buckets must be even (buckets come from +-rotations), got {value}")
        return value


@register("reformer")
class ReformerAttention(Attention):
    """Attention within LSH buckets, sorted and chunked; O(T log T + T C d)."""

    Config = ReformerConfig
    caps = Capabilities(causal=True, padding_mask=True, decodable=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.q_proj = nn.Linear(self.d_model, self.inner)             # shared query-key projection
        self.v_proj = nn.Linear(self.d_model, self.inner)
        c = self.config
        self.register_buffer("rotations", torch.randn(c.n_hashes, self.head_dim, c.n_buckets // 2))

    def buckets(self, qk: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """qk: (B, H, T, dh), real: (B, T) bool -> buckets (B, H, R, T); padding -> n_buckets."""
        rotated = torch.einsum("bhtd,rdk->bhrtk", qk, self.rotations)  # (B, H, R, T, nb/2)
        hashed = torch.cat([rotated, -rotated], dim=-1).argmax(dim=-1)  # (B, H, R, T)
        return hashed.masked_fill(~real[:, None, None, :], self.config.n_buckets)

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        C, R, H = self.config.chunk, self.config.n_hashes, self.n_heads
        real = torch.ones(B, T, dtype=torch.bool, device=x.device) if mask is None else mask
        # Whole chunks, at least two: the extra padding (sorted last) keeps the chunk count provably
        # > 1, which dynamic-shape export needs (a size that may be 1 makes the exporter specialise).
        pad = C * (T // C + 2) - T
        x, real = F.pad(x, (0, 0, 0, pad)), F.pad(real, (0, pad), value=False)  # (B, Tc, d), (B, Tc)
        Tc = x.shape[1]
        qk, v = self.split(self.q_proj(x)), self.split(self.v_proj(x))  # (B, H, Tc, dh)
        bucket = self.buckets(qk, real)                                # (B, H, R, Tc)
        pos = torch.arange(Tc, device=x.device)                        # (Tc,)
        order = (bucket * Tc + pos).argsort(dim=-1)                    # (B, H, R, Tc) unique keys
        s_bucket = bucket.gather(-1, order)                            # (B, H, R, Tc) sorted
        s_pos = pos.expand_as(order).gather(-1, order)                 # (B, H, R, Tc) original positions

        def sort(t: torch.Tensor) -> torch.Tensor:                     # (B, H, Tc, d) -> (B, H, R, Tc, d)
            idx = order[..., None].expand(-1, -1, -1, -1, t.shape[-1])
            return t[:, :, None].expand(-1, -1, R, -1, -1).gather(3, idx)

        n = Tc // C
        q = sort(qk).view(B, H, R, n, C, -1)                           # (B, H, R, n, C, dh)
        k = F.normalize(q, dim=-1)                                     # shared QK: unit-length keys
        vs = sort(v).view(B, H, R, n, C, -1)                           # (B, H, R, n, C, dh)
        qb, qp = s_bucket.view(B, H, R, n, C), s_pos.view(B, H, R, n, C)
        slot = pos.view(n, C)                                          # sorted index of each query
        k, vs = look_one_back(k, 0.0), look_one_back(vs, 0.0)          # (B, H, R, n, 2C, dh)
        kb, kp = look_one_back(qb, -1), look_one_back(qp, -1)          # (B, H, R, n, 2C)
        kslot = look_one_back(slot[None, None, None].expand(B, H, R, n, C), -1)  # (B, H, R, n, 2C)

        logits = (q @ k.transpose(-2, -1)) * self.scale                # (B, H, R, n, C, 2C)
        visible = qb[..., :, None] == kb[..., None, :]                 # same bucket (never padding)
        if self.causal:  # same-bucket keys at most C places back in sorted order = rank within bucket
            gap = slot.view(1, 1, 1, n, C, 1) - kslot[..., None, :]    # (B, H, R, n, C, 2C)
            visible = visible & (gap >= 0) & (gap <= C)
        is_self = qp[..., :, None] == kp[..., None, :]                 # (B, H, R, n, C, 2C)
        logits = logits.masked_fill(is_self, SELF_LOGIT).masked_fill(~visible, NEG_INF)
        lse = logits.logsumexp(dim=-1, keepdim=True)                   # (B, H, R, n, C, 1)
        out = torch.cat([(logits - lse).exp() @ vs, lse], dim=-1)      # (B, H, R, n, C, dh+1)
        out = out.view(B, H, R, Tc, -1)                                # sorted order
        unsorted = torch.empty_like(out).scatter(3, order[..., None].expand_as(out), out)
        values, lse = unsorted[..., :-1], unsorted[..., -1:]           # (B, H, R, Tc, dh), (.., 1)
        combined = (values * lse.softmax(dim=2)).sum(dim=2)            # (B, H, Tc, dh)
        return combined[:, :, :T].transpose(1, 2)                      # (B, T, H, dh)


    # -- decoding: a cache of the unit keys and values (B, H, S, dh) ------------------------------------
    # The causal form's key set of a query depends only on earlier tokens: per hash round, the last C
    # same-bucket positions before it (their rank gap within the bucket) and itself.
    def state_shapes(self, batch="B"):
        return kv_cache_shapes(batch, self.n_heads, self.head_dim)

    def prefill_heads(self, x):
        return self.heads(x), (F.normalize(self.split(self.q_proj(x)), dim=-1), self.split(self.v_proj(x)))

    def step_heads(self, x_t, state, pos):
        B, C = x_t.shape[0], self.config.chunk
        qk, v = (p(x_t).view(B, self.n_heads, 1, self.head_dim) for p in (self.q_proj, self.v_proj))
        k_cache = torch.cat([state[0], F.normalize(qk, dim=-1)], 2)   # (B, H, S + 1, dh): positions 0 .. pos
        v_cache = torch.cat([state[1], v], 2)
        real = torch.ones(B, k_cache.shape[2], dtype=torch.bool, device=x_t.device)
        bucket = self.buckets(k_cache, real)                           # (B, H, R, S + 1): unit keys hash alike
        same = bucket == bucket[..., -1:]                              # (B, H, R, S + 1)
        gap = same.sum(-1, keepdim=True) - same.long().cumsum(-1)      # same-bucket positions after each key
        visible = same & (gap <= C)                                    # (B, H, R, S + 1)
        logits = (qk @ k_cache.transpose(-2, -1)) * self.scale         # (B, H, 1, S + 1)
        is_self = torch.arange(k_cache.shape[2], device=x_t.device) == k_cache.shape[2] - 1
        logits = torch.where(is_self, logits.new_full((), SELF_LOGIT), logits)
        logits = torch.where(visible, logits, logits.new_full((), NEG_INF))  # (B, H, R, S + 1)
        lse = logits.logsumexp(-1, keepdim=True)                       # (B, H, R, 1)
        values = (logits - lse).exp() @ v_cache                        # (B, H, R, dh)
        return (values * lse.softmax(dim=2)).sum(2), (k_cache, v_cache)  # (B, H, dh)


def look_one_back(t: torch.Tensor, fill: float) -> torch.Tensor:
    """Chunks (..., n, C, *rest) -> (..., n, 2C, *rest): the previous chunk (fill for the first), then own."""
    pad_chunk_axis = (0, 0) * (t.dim() - 4) + (1, 0)                  # one fill chunk in front
    prev = F.pad(t, pad_chunk_axis, value=fill)[:, :, :, :-1]          # shifted by one chunk
    return torch.cat([prev, t], dim=4)
