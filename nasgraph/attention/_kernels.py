"""Shared kernels of the kernel/low-rank family: normalised linear attention, non-causal and causal.

Linear attention with non-negative feature maps phi (elu+1, FAVOR+, cosFormer):
    out_i = phi(q_i) . S / max(phi(q_i) . z, eps),   S = sum_j phi(k_j)^T v_j,   z = sum_j phi(k_j)
where j runs over all keys (non-causal) or j <= i (causal). Padded keys must already be zero in
phi(k) (see `base.zero_padded`): they then add nothing to S or z.

The causal form never materialises a (B, H, T, m, dv) prefix sum: the sequence is cut into chunks of
C positions; each chunk reads the running state of the chunks before it ((B, H, T/C, m, dv)) and does
its own masked C x C attention, so memory is O(T (m + C) + (T/C) m dv) and everything is batched
matrix products (no Python loop, so dynamic-length ONNX export works). It needs T to be a multiple of
C: causal types pad their input once with `pad_to_chunks` (cheaper than padding the m-wide features;
the added positions come after every real one, so no real output can see them) and slice at the end.

Decoding keeps S and z themselves: a (m, dv) matrix and an (m,) normaliser per head, fixed size.
"""
from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from nasgraph.attention._by_blocks import by_blocks
from nasgraph.attention._ort_linear import fused_enabled, fused_rule
from nasgraph.attention.base import EPS, Attention, Capabilities, zero_padded


def linear_attention(q_feat: torch.Tensor, k_feat: torch.Tensor, v: torch.Tensor, *, causal: bool,
                     eps: float, chunk: int = 64) -> torch.Tensor:
    """q_feat, k_feat: (B, H, T, m) >= 0 (padded keys zeroed), v: (B, H, T, dv) -> (B, H, T, dv).

    causal=True needs T to be a multiple of chunk (see `pad_to_chunks`).
    """
    if causal:
        return causal_normalised(q_feat, k_feat, v, chunk, eps)[0]    # (B, H, T, dv)
    kv = k_feat.transpose(-2, -1) @ v                                  # (B, H, m, dv)
    z = k_feat.sum(dim=-2).unsqueeze(-1)                               # (B, H, m, 1)
    return (q_feat @ kv) / (q_feat @ z).clamp_min(eps)                 # (B, H, T, dv)


def pad_to_chunks(x: torch.Tensor, mask: torch.Tensor | None, chunk: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pad x: (B, T, d) and mask: (B, T) at the end to a multiple of chunk positions (masked out)."""
    pad = (chunk - x.shape[1] % chunk) % chunk                         # no branch: T may be symbolic
    x = F.pad(x, (0, 0, 0, pad))                                       # (B, n*C, d)
    if mask is not None:
        mask = F.pad(mask, (0, pad), value=False)                      # (B, n*C)
    return x, mask


def causal_normalised(q_feat: torch.Tensor, k_feat: torch.Tensor, v: torch.Tensor, chunk: int, eps: float,
                      S0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Causal linear attention normalised by sum_{j<=i} q_i . k_j, after a state S0 (B, H, m, dv+1) of
    the positions before (None: none) -> (out (B, H, T, dv), the state after (None without S0))."""
    v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)          # (B, H, T, dv+1): last = normaliser
    num_den, S = causal_linear_carry(q_feat, k_feat, v1, chunk, S0)    # (B, H, T, dv+1)
    return num_den[..., :-1] / num_den[..., -1:].clamp_min(eps), S


def causal_linear_carry(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int,
                        S0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unnormalised causal linear attention sum_{j<=i} (q_i . k_j) v_j, chunked, after a state S0 = sum
    of k_j^T v_j over earlier positions, (B, H, m, dv) (None: none). q, k: (B, H, T, m), v: (B, H, T, dv)
    with T a multiple of chunk -> (out (B, H, T, dv), the state after the last position (B, H, m, dv);
    made only with S0)."""
    B, H, T, m = q.shape
    dv = v.shape[-1]
    n = T // chunk
    qc = q.reshape(B, H, n, chunk, m)                                  # (B, H, n, C, m)
    kc = k.reshape(B, H, n, chunk, m)                                  # (B, H, n, C, m)
    vc = v.reshape(B, H, n, chunk, dv)                                 # (B, H, n, C, dv)
    kv = kc.transpose(-2, -1) @ vc                                     # (B, H, n, m, dv)
    state = F.pad(kv[:, :, :-1].cumsum(dim=2), (0, 0, 0, 0, 1, 0))    # (B, H, n, m, dv) chunks before
    last = None
    if S0 is not None:
        state, last = state + S0[:, :, None], S0 + kv.sum(2)          # (B, H, n, m, dv), (B, H, m, dv)
    inter = qc @ state                                                 # (B, H, n, C, dv)
    scores = qc @ kc.transpose(-2, -1)                                 # (B, H, n, C, C)
    keep = torch.ones(chunk, chunk, dtype=torch.bool, device=q.device).tril()
    intra = scores.masked_fill(~keep, 0.0) @ vc                        # (B, H, n, C, dv)
    return (inter + intra).reshape(B, H, T, dv), last                  # (B, H, T, dv)


class LinearStateDecoding(Attention):
    """The decoding form of normalised linear attention: state S (B, H, m, dv) and z (B, H, m).

    A subclass gives `feature_pair(q, k) -> (phi(q), phi(k))` on (B, H, T, dh), `n_features` (m) and
    `eps` (the clamp of the denominator, as in its parallel form)."""

    eps: float = EPS

    @property
    def n_features(self) -> int:
        return self.head_dim

    def feature_pair(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def state_shapes(self, batch="B"):
        return [("kv", (batch, self.n_heads, self.n_features, self.head_dim)),
                ("k_sum", (batch, self.n_heads, self.n_features))]

    def prefill_heads(self, x):
        q, k, v = self.qkv(x)                                          # (B, H, T, dh)
        _, k_feat = self.feature_pair(q, k)                            # (B, H, T, m)
        return self.heads(x), (k_feat.transpose(-2, -1) @ v, k_feat.sum(2))  # (B, H, m, dv), (B, H, m)

    def step_heads(self, x_t, state, pos):
        q, k, v = self.qkv(x_t[:, None])                               # (B, H, 1, dh)
        q_feat, k_feat = self.feature_pair(q, k)                       # (B, H, 1, m)
        kv = state[0] + k_feat.transpose(-2, -1) @ v                   # (B, H, m, dv)
        k_sum = state[1] + k_feat[:, :, 0]                             # (B, H, m)
        num = (q_feat @ kv)[:, :, 0]                                   # (B, H, dv)
        den = (q_feat[:, :, 0] * k_sum).sum(-1, keepdim=True)          # (B, H, 1)
        return num / den.clamp_min(self.eps), (kv, k_sum)


class FeatureMapAttention(LinearStateDecoding):
    """Base of the types that are normalised linear attention over a feature map phi (linear,
    cosformer): subclasses give `features(q, k, T) -> (phi(q), phi(k))`; the config needs `chunk`."""

    caps = Capabilities(causal=True, padding_mask=True, linear=True, decodable=True)
    position_free: ClassVar[bool] = False  # features read no position: the causal form may run by blocks

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def features(self, q: torch.Tensor, k: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k: (B, H, Tc, dh) -> non-negative features (B, H, Tc, m) each; T = the unpadded length."""
        raise NotImplementedError

    def feature_pair(self, q, k):
        return self.features(q, k, q.shape[2])

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.causal:  # position-free features: by blocks when long (see `_by_blocks`)
            keep = None if mask is None else mask.to(x.dtype)          # (B, T)
            init = (x.new_zeros(x.shape[0], self.n_heads, self.n_features, self.head_dim + 1),)
            block = self.config.block if self.position_free else 0
            return by_blocks(self, self.causal_form, x, keep, init, block, self.config.chunk)[0]
        q, k, v = self.qkv(x)                                          # (B, H, T, dh)
        q_feat, k_feat = self.features(q, k, x.shape[1])               # (B, H, T, m)
        out = linear_attention(q_feat, zero_padded(k_feat, mask), v, causal=False, eps=EPS)  # (B, H, T, dh)
        return out.transpose(1, 2)                                     # (B, T, H, dh)

    def causal_form(self, x: torch.Tensor, keep: torch.Tensor | None, state: tuple[torch.Tensor] | None
                    ) -> tuple[torch.Tensor, tuple[torch.Tensor | None]]:
        """x (B, T, d), keep (B, T) 1.0 / 0.0 (None: all real), state: (sum of phi(k)^T [v, 1] over the
        positions before x (B, H, m, dv + 1),) or None (none) -> (heads (B, T, H, dh), the state after
        x (None without one))."""
        T = x.shape[1]
        if fused_enabled():                                            # exported: one LinearAttention node
            return self.fused_form(x, keep, state)
        x, mask = pad_to_chunks(x, None if keep is None else keep > 0, self.config.chunk)  # (B, Tc, d)
        q, k, v = self.qkv(x)                                          # (B, H, Tc, dh)
        q_feat, k_feat = self.features(q, k, T)                        # (B, H, Tc, m)
        out, S = causal_normalised(q_feat, zero_padded(k_feat, mask), v, self.config.chunk, EPS,
                                   None if state is None else state[0])  # (B, H, Tc, dh)
        return out[:, :, :T].transpose(1, 2), (S,)                     # (B, T, H, dh)

    def fused_form(self, x: torch.Tensor, keep: torch.Tensor | None, state: tuple[torch.Tensor] | None
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor]]:
        """causal_form through `linear_recurrence` (rule linear) on [v, 1]: its last output column is
        the normaliser, as in `causal_normalised`."""
        q, k, v = self.qkv(x)                                          # (B, H, T, dh)
        q_feat, k_feat = self.features(q, k, x.shape[1])               # (B, H, T, m)
        k_feat = zero_padded(k_feat, None if keep is None else keep > 0)
        v1 = torch.cat([v, torch.ones_like(v[..., :1])], dim=-1)      # (B, H, T, dh+1)
        num_den, S = fused_rule(q_feat, k_feat, v1, None, None, None if state is None else state[0])
        out = num_den[..., :-1] / num_den[..., -1:].clamp_min(EPS)     # (B, H, T, dh)
        return out.transpose(1, 2), (S,)                               # (B, T, H, dh)
