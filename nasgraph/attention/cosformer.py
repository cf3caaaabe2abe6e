"""cosFormer attention (Qin et al. 2022): ReLU features with a cos re-weighting of distance.

q' = ReLU(q), k' = ReLU(k); positions i = 1..T and M = T (the padded length = the longest sequence
in the batch, as in the authors' code M = max(L, S));
    q~_i = [q'_i sin(pi i / 2M), q'_i cos(pi i / 2M)]   (k~ likewise)
so q~_i . k~_j = (q'_i . k'_j) cos(pi (i - j) / 2M), and
    out_i = q~_i (sum_j k~_j^T v_j) / max(q~_i . sum_j k~_j, eps),   j <= i in the causal form.
Note: M is the padded length, so a sequence's output depends on how long its batch is padded.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import PositiveInt

from nasgraph.attention._kernels import FeatureMapAttention
from nasgraph.attention.base import AttentionConfig, Capabilities
from nasgraph.attention.registry import register


class CosformerConfig(AttentionConfig):
    chunk: PositiveInt = 64  # causal form: positions per chunk of the prefix sum


def cos_reweighted(feat: torch.Tensor, M: int) -> torch.Tensor:
    """(B, H, L, d) -> (B, H, L, 2d): [f sin(pi i / 2M), f cos(pi i / 2M)] for i = 1..L."""
    L = feat.shape[2]
    i = torch.arange(1, L + 1, device=feat.device, dtype=feat.dtype)  # (L,)
    angle = (math.pi / 2) * i / M                                      # (L,) in (0, pi/2] for i <= M
    return torch.cat([feat * angle.sin()[:, None], feat * angle.cos()[:, None]], dim=-1)


@register("cosformer")
class CosformerAttention(FeatureMapAttention):
    """Linear attention with ReLU features and cos(pi (i - j) / 2M) locality bias; O(T d^2)."""

    Config = CosformerConfig
    caps = Capabilities(causal=True, padding_mask=True, linear=True, decodable=False,
                        decode_note="its cos re-weighting divides by M = the whole sequence's length, unknown "
                                    "while decoding (each position's output changes as the sequence grows)")

    def features(self, q: torch.Tensor, k: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
        return cos_reweighted(F.relu(q), T), cos_reweighted(F.relu(k), T)   # (B, H, Tc, 2dh) each
