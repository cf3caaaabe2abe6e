"""Pieces of the decoding forms (see `base.Attention.step_heads`) shared by several types.

Everything is plain tensor ops with no Python branch on tensor values and no in-place update of a
state tensor, so that a step traces to an ONNX graph whose state inputs map to state outputs.
`pos` (the index of the current token) may be an int or a 0-d int64 tensor.
"""
from __future__ import annotations

import torch
from torch import Tensor

from nasgraph.attention._blocks import aft_output
from nasgraph.attention.base import NEG_INF, Attention


def as_position(pos, ref: Tensor) -> Tensor:
    """pos as a 0-d int64 tensor on ref's device."""
    return torch.as_tensor(pos, dtype=torch.int64, device=ref.device)


def kv_cache_shapes(batch, heads: int, head_dim: int) -> list[tuple[str, tuple]]:
    """state_shapes() of a KV cache (batch, heads, S, head_dim) that grows by one position per token."""
    shape = (batch, heads, "S", head_dim)
    return [("k_cache", shape), ("v_cache", shape)]


def push_window(buffer: Tensor, new: Tensor) -> tuple[Tensor, Tensor]:
    """A window of the last W positions (..., W, d) plus the current one (..., 1, d).

    -> (the W + 1 positions pos - W .. pos in order, the next window: its last W).
    """
    both = torch.cat([buffer, new], -2)                              # (..., W + 1, d)
    return both, both[..., 1:, :]                                    # (..., W + 1, d), (..., W, d)


def last_positions(t: Tensor, W: int) -> Tensor:
    """The last W positions of t (..., T, d) -> (..., W, d), zeros in front when T < W."""
    T = t.shape[-2]
    padded = torch.cat([t.new_zeros(*t.shape[:-2], W, t.shape[-1]), t], -2)  # (..., W + T, d)
    return padded[..., T:, :]                                        # (..., W, d)


def first_positions(t: Tensor, n: int) -> Tensor:
    """The first n positions of t (..., T, d) -> (..., n, d), zeros after the end when T < n."""
    padded = torch.cat([t, t.new_zeros(*t.shape[:-2], n, t.shape[-1])], -2)  # (..., T + n, d)
    return padded[..., :n, :]                                        # (..., n, d)


def attend_one(q: Tensor, k: Tensor, v: Tensor, scale: float, allowed: Tensor | None = None) -> Tensor:
    """Softmax attention of a few queries over a key set.

    q: (B, G, g, dh); k, v: (B, G, L, dh); allowed: bool broadcastable to (B, G, g, L) or None
    -> (B, G, g, dh). Disallowed keys get the finite NEG_INF, as in the parallel forms.
    """
    logits = (q @ k.transpose(-2, -1)) * scale                       # (B, G, g, L)
    if allowed is not None:
        logits = torch.where(allowed, logits, logits.new_full((), NEG_INF))
    return logits.softmax(-1) @ v                                    # (B, G, g, dh)


def online_sums(m: Tensor, num: Tensor, den: Tensor, k: Tensor, v: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
    """Running AFT sums with a running max: num = sum_j exp(k_j - m) v_j, den = sum_j exp(k_j - m).

    m, num, den, k, v: (B, C) -> the new (m, num, den) after adding position (k, v). The shift m only
    rescales both sums alike, so num / den is the parallel forms' exact ratio.
    """
    m_new = torch.maximum(m, k)                                      # (B, C)
    keep, ek = torch.exp(m - m_new), torch.exp(k - m_new)            # (B, C)
    return m_new, num * keep + ek * v, den * keep + ek


def aft_prefill_sums(k: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The running AFT sums after a whole prefix: k, v (B, T, C) -> (m, num, den), (B, C) each."""
    m = k.amax(1)                                                    # (B, C)
    ek = torch.exp(k - m[:, None])                                   # (B, T, C)
    return m, (ek * v).sum(1), ek.sum(1)


def aft_window_sums(state: tuple[Tensor, ...], k: Tensor, v: Tensor, valid: Tensor, band: Tensor
                    ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], tuple[Tensor, ...]]:
    """One token of an AFT type with position weights on its last s positions (aft_local, aft_conv).

    state: (m, num, den) (B, C) running sums (see `online_sums`), then the last s - 1 raw keys and values
    (B, s - 1, C); k, v: (B, C); valid: (s,) bool for positions pos - s + 1 .. pos (False before 0);
    band: (s, C or 1) weights of those positions. -> ((num, den) totals, (num, den) of the band-weighted
    window, both under the same shift m, each (B, C)), new state.
    """
    m, num, den = online_sums(state[0], state[1], state[2], k, v)   # (B, C) each
    keys, window_k = push_window(state[3], k[:, None])               # (B, s, C)
    values, window_v = push_window(state[4], v[:, None])             # (B, s, C)
    keys = torch.where(valid[:, None], keys, keys.new_full((), NEG_INF))  # before position 0: weight 0
    weighted = torch.exp(keys - m[:, None]) * band                   # (B, s, C)
    local = ((weighted * values).sum(1), weighted.sum(1))            # (B, C) each
    return (num, den), local, (m, num, den, window_k, window_v)


class AFTWindowDecoding(Attention):
    """The decoding form of the AFT types with position weights on the last s positions (aft_local,
    aft_conv): running sums (m, num, den) (B, C) and the last s - 1 raw keys and values (B, s - 1, C).
    A subclass gives `window_size` (s) and `band_weights`."""

    @property
    def window_size(self) -> int:
        raise NotImplementedError

    def band_weights(self, pos: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
        """Position pos, valid (s,) -> (weight of the totals (0-d), weights added on the last s positions
        (s, C or 1)); any factor shared by both cancels in AFT's ratio."""
        raise NotImplementedError

    def state_shapes(self, batch="B"):
        window = (batch, self.window_size - 1, self.inner)
        return [(n, (batch, self.inner)) for n in ("k_max", "num", "den")] + [("window_k", window),
                                                                            ("window_v", window)]

    def state_fills(self):
        return (NEG_INF, 0.0, 0.0, 0.0, 0.0)

    def prefill_heads(self, x):
        k, v, W = self.k_proj(x), self.v_proj(x), self.window_size - 1  # (B, T, C)
        return self.heads(x), aft_prefill_sums(k, v) + (last_positions(k, W), last_positions(v, W))

    def step_heads(self, x_t, state, pos):
        pos, s = as_position(pos, x_t), self.window_size
        q, k, v = self.q_proj(x_t), self.k_proj(x_t), self.v_proj(x_t)  # (B, C)
        valid = pos - s + 1 + torch.arange(s, device=x_t.device) >= 0  # (s,)
        outside, band = self.band_weights(pos, valid)
        total, local, state = aft_window_sums(state, k, v, valid, band)  # (B, C) pairs
        num, den = (outside * t + l for t, l in zip(total, local))
        return aft_output(q, num, den, self.n_heads), state            # (B, H, dh)


def split_state(modules, state: tuple) -> list[tuple]:
    """A flat state tuple -> one tuple per module, in order, by the lengths of their state_shapes()."""
    parts, at = [], 0
    for m in modules:
        n = len(m.state_shapes())
        parts.append(tuple(state[at:at + n]))
        at += n
    if at != len(state):
        raise ValueError(f"decoding state has {len(state)} tensors, the layers describe {at}")
    return parts
