"""MixedAttention: every candidate computes all heads; a mixer turns alphas into per-head weights.

granularity "layer": one alpha vector per layer, (1, C); "head": one per head, (H, C). The mix is one
weighted sum over candidates of (B, T, H, dh) head outputs, then one shared out_proj: no Python loop
over heads. Candidates whose weight is zero for every head (GDAS samples, masked-out candidates) are
not run at all.

The layer knows nothing about search strategies: it mixes with a softmax of its alphas until a
strategy attaches its own mixer (`layer.mixer = strategy`), as NNI's mutators do.
"""
from __future__ import annotations

from typing import Protocol

import torch
from torch import nn

from nasgraph import attention
from nasgraph.ops.candidates import candidate_label


class Mixer(Protocol):
    """Turns alphas (G, C) into mixing weights (G, C)."""

    def __call__(self, alpha: torch.Tensor, node: str) -> torch.Tensor: ...


def softmax_mixer(alpha: torch.Tensor, node: str) -> torch.Tensor:
    """The default: softmax over candidates (DARTS)."""
    return alpha.softmax(dim=-1)


class MixedAttention(nn.Module):
    def __init__(self, candidates: list[tuple[str, dict]], d_model: int, n_heads: int, granularity: str,
                 causal: bool, max_len: int, mixer: Mixer = softmax_mixer):
        super().__init__()
        self.labels = [candidate_label(n, o) for n, o in candidates]
        self.candidates = nn.ModuleList(
            attention.build(n, d_model, n_heads, causal, max_len, out_proj=False, **o) for n, o in candidates)
        self.granularity = granularity
        groups = n_heads if granularity == "head" else 1
        self.alpha = nn.Parameter(1e-3 * torch.randn(groups, len(candidates)))  # (G, C)
        self.out_proj = nn.Linear(d_model, d_model)
        self.mixer: Mixer = mixer
        self.node = ""  # set by the GraphModule: the graph node this layer belongs to

    def weights(self) -> torch.Tensor:
        """Current mixing weights (G, C)."""
        return self.mixer(self.alpha, self.node)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        w = self.weights()                                               # (G, C)
        active = (w != 0).any(dim=0).tolist()                            # skip all-zero candidates
        out = None
        for c, cand in enumerate(self.candidates):
            if not active[c]:
                continue
            cand.check_length(x.shape[1])
            h = cand.heads(x, mask) * w[:, c][None, None, :, None]      # (B, T, H, dh)
            out = h if out is None else out + h
        if out is None:
            raise RuntimeError(f"mixed attention '{self.node}': every candidate has weight zero")
        return self.out_proj(out.flatten(2))                             # (B, T, D)
