"""Performer attention, FAVOR+ (Choromanski et al. 2021): positive orthogonal random features.

softmax kernel exp(q . k) ~ phi(q) . phi(k) with phi(x) = exp(W x - |x|^2 / 2) / sqrt(m), W: m rows,
orthogonal in blocks of dh, row norms drawn from chi(dh); q and k are scaled by dh^(-1/4) first, so
the kernel is exp(q . k / sqrt(dh)). Then out_i = phi(q_i) (sum_j phi(k_j)^T v_j) / phi(q_i) . sum_j phi(k_j).

Stabilisation that keeps padding and causality exact. A factor shared by all keys of a query cancels,
and so does any factor of one query; a factor that depended on other keys (performer-pytorch's max over
all keys) would let padded or future keys move the result through eps and rounding. So each feature i
is split exactly between the two sides, using only data-independent constants for the keys:
    key    feature  exp(w_i . k - |k|^2/2 - |w_i|^2/2 + h) = exp(h - |w_i - k|^2 / 2)   in (0, e^h]
    query  feature  exp(w_i . q + |w_i|^2/2 - max_i'(w_i' . q + |w_i'|^2/2))         in (0, 1]
Their product is the FAVOR+ term times a per-query constant, so the normalised output is unchanged.
"""
from __future__ import annotations

import math

import torch
from pydantic import Field, PositiveInt

from nasgraph.attention._kernels import LinearStateDecoding, linear_attention, pad_to_chunks
from nasgraph.attention.base import AttentionConfig, Capabilities, zero_padded
from nasgraph.attention.registry import register

TINY = 1e-30  # denominators: features are never rescaled by data, so only an empty key set gives 0


class PerformerConfig(AttentionConfig):
    n_features: int = Field(64, ge=1, le=1 << 20)  # random features m (LRA: 256); the bound: one QR block per d
    redraw: bool = False          # draw new features at every training-mode forward (never in eval)
    chunk: PositiveInt = 64       # causal form: positions per chunk of the prefix sum


def orthogonal_features(m: int, d: int) -> torch.Tensor:
    """(m, d) random projection: blocks of d orthogonal rows, each row scaled to a chi(d) norm."""
    blocks = [torch.linalg.qr(torch.randn(d, d))[0].T for _ in range(math.ceil(m / d))]
    directions = torch.cat(blocks)[:m]                                 # (m, d), unit rows
    norms = torch.randn(m, d).norm(dim=1, keepdim=True)                # (m, 1) ~ chi(d)
    return directions * norms


@register("performer")
class PerformerAttention(LinearStateDecoding):
    """Softmax attention approximated by positive random features; O(T m d)."""

    Config = PerformerConfig
    caps = Capabilities(causal=True, padding_mask=True, linear=True, decodable=True)
    eps = TINY

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()
        self.register_buffer("features", orthogonal_features(self.config.n_features, self.head_dim))
        self.headroom = min(self.head_dim / 2.0, 30.0)  # h: key features <= e^h, far from overflow

    @property
    def n_features(self) -> int:
        return self.config.n_features

    def feature_pair(self, q, k):
        return self.feature_maps(q, k)

    def redraw_features(self) -> None:
        """Draw a new projection in place (the buffer keeps its identity for optimisers/exports)."""
        with torch.no_grad():
            self.features.copy_(orthogonal_features(self.config.n_features, self.head_dim))

    def feature_maps(self, q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q, k: (B, H, T, dh) -> positive features (B, H, T, m) split as in the module docstring.

        The per-feature and per-key offsets ride along in the projection matmul as extra columns
        ([x, 1, |x|^2] against [w, offset, -1/2]), so each side costs one matmul and one exp pass.
        """
        w = self.features                                              # (m, dh)
        half_w2 = 0.5 * (w * w).sum(dim=-1, keepdim=True)              # (m, 1)
        s = self.head_dim ** -0.25                                     # q, k scaled by dh^(-1/4)
        ones = torch.ones_like(q[..., :1])                             # (B, H, T, 1)
        q_logits = torch.cat([q, ones], dim=-1) @ torch.cat([w * s, half_w2], dim=-1).T  # (B, H, T, m)
        q_logits -= q_logits.detach().amax(dim=-1, keepdim=True)       # per-query shift cancels
        k2 = (k * k).sum(dim=-1, keepdim=True) * (s * s)               # (B, H, T, 1) = |k'|^2
        w_k = torch.cat([w * s, self.headroom - half_w2, torch.full_like(half_w2, -0.5)], dim=-1)
        k_logits = torch.cat([k, ones, k2], dim=-1) @ w_k.T            # (B, H, T, m) <= h
        return q_logits.exp_(), k_logits.exp_()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.config.redraw and self.training:
            self.redraw_features()
        T = x.shape[1]
        if self.causal:
            x, mask = pad_to_chunks(x, mask, self.config.chunk)       # (B, Tc, d): whole chunks
        q, k, v = self.qkv(x)                                          # (B, H, Tc, dh)
        q_feat, k_feat = self.feature_maps(q, k)                       # (B, H, Tc, m)
        k_feat = zero_padded(k_feat, mask)                             # padded keys add nothing
        out = linear_attention(q_feat, k_feat, v, causal=self.causal, eps=TINY,
                               chunk=self.config.chunk)                # (B, H, Tc, dh)
        return out[:, :, :T].transpose(1, 2)                           # (B, T, H, dh)
