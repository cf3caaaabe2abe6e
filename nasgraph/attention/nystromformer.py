"""Nystromformer attention (Xiong et al. 2021): a Nystrom approximation of softmax attention.

Landmarks q~, k~ are the means of m contiguous segments of the queries and keys. With
    F~ = softmax(Q k~^T / sqrt(d))   (T x m),   A~ = softmax(q~ k~^T / sqrt(d))   (m x m),
    B~ = softmax(q~ K^T / sqrt(d))   (m x T),
out = F~ pinv(A~) (B~ V), pinv by the paper's iteration Z <- Z (13 I - A Z (15 I - A Z (7 I - A Z))) / 4
from Z0 = A^T / (||A||_1 ||A||_inf) (per batch element and head, not over the whole batch).

Segments: l = ceil(T / m) positions each; a segment mean counts real tokens only. A segment with no
real token (T < m l, padding, or T < m) is an empty landmark: it is masked out of F~ and A~ and its
row of A~ is zeroed, which is exactly the same as leaving it out (the pinv iteration keeps the zero
block zero). So T < m gives every token its own landmark. There is no causal form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import PositiveInt

from nasgraph.attention.base import NEG_INF, Attention, AttentionConfig, Capabilities, key_padding_bias
from nasgraph.attention.registry import register

PINV_EPS = 1e-12  # keeps Z0 finite when every landmark is empty (a fully padded sequence)


class NystromformerConfig(AttentionConfig):
    landmarks: PositiveInt = 64       # m (the nystrom-attention package defaults to 256)
    pinv_iterations: PositiveInt = 6  # the paper uses 6


def iterative_pinv(a: torch.Tensor, iterations: int) -> torch.Tensor:
    """Moore-Penrose pseudo-inverse of non-negative a: (..., m, m) by the Nystromformer iteration."""
    eye = torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)      # (m, m)
    norm_1 = a.sum(dim=-2).amax(dim=-1)                                # (...,) max column sum
    norm_inf = a.sum(dim=-1).amax(dim=-1)                              # (...,) max row sum
    z = a.transpose(-2, -1) / (norm_1 * norm_inf).clamp_min(PINV_EPS)[..., None, None]
    for _ in range(iterations):
        az = a @ z                                                     # (..., m, m)
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def segment_means(t: torch.Tensor, real: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means of the real tokens in m segments of ceil(T/m) positions.

    t: (B, H, T, d), real: (B, T) float 1/0 -> means (B, H, m, d), counts (B, m).
    """
    B, H, T, d = t.shape
    seg = (T + m - 1) // m
    pad = m * seg - T
    weights = F.pad(real, (0, pad))                                    # (B, m*seg)
    counts = weights.view(B, m, seg).sum(dim=-1)                       # (B, m)
    sums = F.pad(t * real[:, None, :, None], (0, 0, 0, pad))           # (B, H, m*seg, d)
    sums = sums.view(B, H, m, seg, d).sum(dim=3)                       # (B, H, m, d)
    return sums / counts.clamp_min(1.0)[:, None, :, None], counts


@register("nystromformer")
class NystromformerAttention(Attention):
    """Softmax attention through m segment-mean landmarks; O(T m d + m^3)."""

    Config = NystromformerConfig
    caps = Capabilities(causal=False, padding_mask=True, linear=True)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.qkv_projections()

    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x)                                          # (B, H, T, dh)
        q = q * self.scale                                             # fold 1/sqrt(d) into q
        real = torch.ones(B, T, dtype=x.dtype, device=x.device) if mask is None else mask.to(x.dtype)
        m = self.config.landmarks
        q_lm, counts = segment_means(q, real, m)                       # (B, H, m, dh), (B, m)
        k_lm, _ = segment_means(k, real, m)                            # (B, H, m, dh)
        present = (counts > 0).to(x.dtype)                             # (B, m) 1 = non-empty landmark
        lm_bias = ((1.0 - present) * NEG_INF)[:, None, None, :]        # (B, 1, 1, m)
        a = (q_lm @ k_lm.transpose(-2, -1) + lm_bias).softmax(dim=-1)  # (B, H, m, m) A~
        a = a * present[:, None, :, None]                              # empty landmark rows -> 0
        bias = key_padding_bias(mask, x.dtype)                         # (B, 1, 1, T) or None
        bv = F.scaled_dot_product_attention(q_lm, k, v, attn_mask=bias, scale=1.0)  # (B, H, m, dh) B~ V
        w = iterative_pinv(a, self.config.pinv_iterations) @ bv        # (B, H, m, dh)
        out = F.scaled_dot_product_attention(q, k_lm, w, attn_mask=lm_bias, scale=1.0)  # (B, H, T, dh) F~ W
        return out.transpose(1, 2)                                     # (B, T, H, dh)
