"""The attention op: a fixed type, a per-head assignment, or a choice point (a mixed layer).

One op serves the supernet and the derived model: with several `candidates` it builds a
MixedAttention (alphas, mixed by whatever mixer a search strategy attaches; softmax until then);
with one candidate a plain attention; with `heads` (one candidate per head) a HeteroAttention whose heads of different types share out_proj.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from nasgraph import attention
from nasgraph.attention._decode import split_state
from nasgraph.ops.base import Op, OpConfig, expect
from nasgraph.ops.candidates import Candidate, candidate_label, normalize_candidate
from nasgraph.ops.mixed_attention import MixedAttention
from nasgraph.ops.registry import register

__all__ = ["AttentionOp", "AttentionOpConfig", "Candidate", "HeteroAttention", "MixedAttention", "candidate_label",
           "normalize_candidate"]


class AttentionOpConfig(OpConfig):
    candidates: list[Candidate] | None = None
    granularity: Literal["layer", "head"] = "layer"
    heads: list[Candidate] | None = None
    causal: bool = False

    def resolved(self) -> list[tuple[str, dict[str, Any]]]:
        return [normalize_candidate(c) for c in (self.candidates or self.heads or [])]

    @property
    def is_choice(self) -> bool:
        return self.candidates is not None and len(self.candidates) > 1


class HeteroAttention(nn.Module):
    """Heads of several types in one layer: each type computes its own heads, one shared out_proj."""

    def __init__(self, heads: list[tuple[str, dict]], d_model: int, causal: bool, max_len: int):
        super().__init__()
        n_heads, head_dim = len(heads), d_model // len(heads)
        labels = [candidate_label(n, o) for n, o in heads]
        groups = list(dict.fromkeys(labels))                      # distinct types, first-seen order
        self.groups = nn.ModuleList()
        order: list[int] = []
        for label in groups:
            idx = [h for h, l in enumerate(labels) if l == label]
            name, options = heads[idx[0]]
            self.groups.append(attention.build(name, d_model, len(idx), causal, max_len,
                                               head_dim=head_dim, out_proj=False, **options))
            order += idx
        # position of each head in the concatenation of the groups' heads
        self.register_buffer("perm", torch.tensor([order.index(h) for h in range(n_heads)]), persistent=False)
        self.labels, self.group_labels = labels, groups
        self.out_proj = nn.Linear(n_heads * head_dim, d_model)

    def combine(self, heads: list[torch.Tensor]) -> torch.Tensor:
        """The groups' heads (..., H_g, dh), in group order -> (..., D): head order, then out_proj."""
        h = torch.cat(heads, dim=-2).index_select(-2, self.perm)        # (..., H, dh), head order
        return self.out_proj(h.flatten(-2))                              # (..., D)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for g in self.groups:
            g.check_length(x.shape[1])
        return self.combine([g.heads(x, mask) for g in self.groups])    # (B, T, D)

    # -- decoding: the groups' states one after the other (see Attention.step_heads) ----------------------
    def state_shapes(self, batch="B"):
        return [(f"{label}.{name}", shape) for g, label in zip(self.groups, self.group_labels)
                for name, shape in g.state_shapes(batch)]

    def state_fills(self) -> tuple[float, ...]:
        return tuple(f for g in self.groups for f in g.state_fills())

    def init_state(self, batch: int, **kwargs) -> tuple[torch.Tensor, ...]:
        return tuple(t for g in self.groups for t in g.init_state(batch, **kwargs))

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        for g in self.groups:
            g.check_length(x.shape[1])
        heads, states = zip(*(g.prefill_heads(x) for g in self.groups))  # (B, T, H_g, dh) each
        return self.combine(list(heads)), tuple(t for s in states for t in s)

    def step(self, x_t: torch.Tensor, state: tuple, pos) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        x2 = x_t.reshape(x_t.shape[0], -1)                               # (B, D)
        outs = [g.step_heads(x2, s, pos) for g, s in zip(self.groups, split_state(self.groups, state))]  # (B, H_g, dh)
        y = self.combine([o for o, _ in outs]).reshape(x_t.shape)        # like x_t
        return y, tuple(t for _, s in outs for t in s)


@register("attention")
class AttentionOp(Op):
    Config = AttentionOpConfig

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        expect(inputs[0], ("B", "T", ctx.d_model), "attention")
        return inputs[0]

    def __init__(self, config: AttentionOpConfig, ctx):
        super().__init__(config, ctx)
        cands = config.resolved()
        if config.heads is not None:
            self.inner = HeteroAttention(cands, ctx.d_model, config.causal, ctx.max_len)
        elif config.is_choice:
            self.inner = MixedAttention(cands, ctx.d_model, ctx.n_heads, config.granularity,
                                        config.causal, ctx.max_len)
        else:
            name, options = cands[0]
            self.inner = attention.build(name, ctx.d_model, ctx.n_heads, config.causal, ctx.max_len, **options)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(x, mask)                                       # (B, T, D)
