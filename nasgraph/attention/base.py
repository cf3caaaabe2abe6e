"""The attention family's contract: a typed config, capability flags and a per-head core.

Every type maps x: (B, T, d_model) and an optional padding mask (B, T) bool (True = real token) to
per-head outputs (B, T, H, head_dim) in `heads()`; `forward()` adds the output projection. The split
lets a per-head (heterogeneous) layer mix or concatenate heads of different types before one shared
`out_proj`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from nasgraph.config import StrictConfig
from nasgraph.errors import SequenceTooLongError

NEG_INF = -1e9  # finite "minus infinity": a fully masked row stays finite (and ONNX-friendly)
EPS = 1e-6      # denominators of normalised kernels


@dataclass(frozen=True)
class Capabilities:
    """What a type can do; the wrappers and the tests read these instead of special-casing names."""

    causal: bool = True          # has a causal form
    noncausal: bool = True       # has a non-causal form (False: causal-only, e.g. recurrences)
    padding_mask: bool = True    # honours mask: padded keys never reach real positions
    bounded: bool = False        # needs max_len (position-sized parameters)
    exportable: bool = True      # exports with the dynamo ONNX exporter and matches ONNX Runtime
    linear: bool = False         # time and memory grow linearly in T (for a fixed config)
    exact: bool = True           # deterministic at eval (no random features redrawn per call)
    recurrent: bool = False      # has the decoding form: init_state(B) and step(x_t, state), see below


class AttentionConfig(StrictConfig):
    """Options of one attention type. Subclasses add typed fields; unknown keys are rejected."""


class Attention(nn.Module):
    """Base of every attention type. Subclasses implement `heads()`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[AttentionConfig]] = AttentionConfig
    caps: ClassVar[Capabilities] = Capabilities()

    def __init__(self, d_model: int, n_heads: int, *, config: AttentionConfig, causal: bool = False,
                 max_len: int | None = None, head_dim: int | None = None, out_proj: bool = True):
        super().__init__()
        self.d_model, self.n_heads = d_model, n_heads
        self.head_dim = head_dim or d_model // n_heads
        self.inner = self.n_heads * self.head_dim
        self.causal, self.max_len, self.config = causal, max_len, config
        self.out_proj = nn.Linear(self.inner, d_model) if out_proj else None

    # -- helpers shared by the types ---------------------------------------------------------------
    def qkv_projections(self, bias: bool = True) -> None:
        """Create q_proj, k_proj, v_proj: d_model -> H * head_dim."""
        self.q_proj = nn.Linear(self.d_model, self.inner, bias=bias)
        self.k_proj = nn.Linear(self.d_model, self.inner, bias=bias)
        self.v_proj = nn.Linear(self.d_model, self.inner, bias=bias)

    def split(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, H*dh) -> (B, H, T, dh)."""
        B, T, _ = t.shape
        return t.view(B, T, self.n_heads, self.head_dim).transpose(1, 2)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Projected queries, keys and values, each (B, H, T, dh)."""
        return self.split(self.q_proj(x)), self.split(self.k_proj(x)), self.split(self.v_proj(x))

    @property
    def scale(self) -> float:
        return 1.0 / math.sqrt(self.head_dim)

    def check_length(self, T: int) -> None:
        if self.max_len is not None and T > self.max_len:
            raise SequenceTooLongError(
                f"attention '{self.name}': sequence length {T} exceeds max_len {self.max_len}")

    # -- the contract ------------------------------------------------------------------------------
    def heads(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d_model), mask: (B, T) bool or None -> (B, T, H, head_dim)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, T, d_model) -> (B, T, d_model)."""
        self.check_length(x.shape[1])
        h = self.heads(x, mask)                          # (B, T, H, dh)
        if self.out_proj is None:
            raise RuntimeError(f"attention '{self.name}' was built with out_proj=False; call heads()")
        return self.out_proj(h.flatten(2))               # (B, T, d_model)

    # -- optional: token-by-token decoding (caps.recurrent) -------------------------------------------
    # A recurrent type keeps a fixed-size state per head instead of a growing key/value cache:
    #   init_state(B, device=, dtype=) -> state (B, H, dk, dv), zeros
    #   step(x_t, state) -> (y_t, state): x_t (B, d_model) -> y_t (B, d_model) (after out_proj)
    #   step_heads(x_t, state) -> (o_t (B, H, head_dim), state): before out_proj
    # Feeding x_1..x_T through step() gives forward(x)[:, t] at each t (causal form, no padding).
    # The state layout per head is (dk, dv): o_t = q_t S_t with q_t a (dk,) row; dv = head_dim and
    # dk = head_dim except where the type says otherwise (ssd: d_state).

    def extra_repr(self) -> str:
        return f"{self.name}, d_model={self.d_model}, heads={self.n_heads}x{self.head_dim}, causal={self.causal}"


# -- masks, shared by the types ----------------------------------------------------------------------
def key_padding_bias(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """(B, T) bool -> additive bias (B, 1, 1, T): 0 for real keys, NEG_INF for padded keys."""
    if mask is None:
        return None
    return (~mask)[:, None, None, :].to(dtype) * NEG_INF


def zero_padded(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the padded positions of t: (B, H, T, d) with mask (B, T)."""
    if mask is None:
        return t
    return t * mask[:, None, :, None].to(t.dtype)


def causal_bias(T: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(T, T) additive bias: 0 on and below the diagonal, NEG_INF above."""
    upper = torch.ones(T, T, dtype=torch.bool, device=device).triu(1)
    return upper.to(dtype) * NEG_INF
