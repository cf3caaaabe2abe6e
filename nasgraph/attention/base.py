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
    recurrent: bool = False      # a linear recurrence with a (dk, dv) state per head (retention, gla, ...)
    decodable: bool = False      # has the decoding form: state_shapes / init_state / step / prefill, see below
    decode_note: str = ""        # why a causal type cannot decode (caps.decodable=False), for skips and errors


class AttentionConfig(StrictConfig):
    """Options of one attention type. Subclasses add typed fields; unknown keys are rejected."""

    def check_heads(self, n_heads: int) -> None:
        """ConfigError (naming the option as its key) when these options cannot run with `n_heads` heads."""


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
        return self._project(h.flatten(2))               # (B, T, d_model)

    # -- optional: token-by-token decoding (caps.decodable) ------------------------------------------
    # A decodable type carries a state from token to token (its causal form only, no padding):
    #   state_shapes(batch) -> [(name, shape)]: shape entries are ints, "B" (batch, when not given) or
    #       "S" (a cache that grows by one position per token, e.g. softmax's KV cache)
    #   init_state(batch) -> state: a tuple of tensors, the state before the first token
    #   step_heads(x_t (B, d_model), state, pos) -> (o_t (B, H, head_dim), new state); pos = index of x_t
    #   prefill_heads(x (B, T, d_model)) -> (heads(x) (B, T, H, head_dim), state after x)
    # step() / prefill() add out_proj. Feeding x_1..x_T through step() gives forward(x)[:, t] at each t.
    # Step code is plain tensor ops (no Python branch on tensor values, no in-place update of the state,
    # caches grow by concatenation) so that it traces to ONNX; pos may be an int or a 0-d int64 tensor.
    def state_shapes(self, batch: int | str = "B") -> list[tuple[str, tuple[int | str, ...]]]:
        """Names and shapes of the state tensors, in the order of the state tuple."""
        raise NotImplementedError(f"attention '{self.name}' has no decoding form: {self.caps.decode_note}")

    def state_fills(self) -> tuple[float, ...]:
        """The value each state tensor starts at (zeros unless a type says otherwise)."""
        return (0.0,) * len(self.state_shapes())

    def init_state(self, batch: int, *, device: torch.device | None = None,
                   dtype: torch.dtype | None = None) -> tuple[torch.Tensor, ...]:
        """The state before the first token ("S" dims start empty), on the parameters' device/dtype."""
        weight = next(self.parameters())
        return tuple(torch.full([0 if d == "S" else d for d in shape], fill, device=device or weight.device,
                                dtype=dtype or weight.dtype)
                     for (_, shape), fill in zip(self.state_shapes(batch), self.state_fills()))

    def step_heads(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...], pos
                   ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x_t (B, d_model) at position pos -> (o_t (B, H, head_dim), new state)."""
        raise NotImplementedError(f"attention '{self.name}' has no decoding form: {self.caps.decode_note}")

    def prefill_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x (B, T, d_model) -> (heads(x) (B, T, H, head_dim), state after position T - 1).

        This default steps token by token (correct for every decodable type); types override it with
        their parallel form plus the final state."""
        state, outs = self.init_state(x.shape[0], device=x.device, dtype=x.dtype), []
        for t in range(x.shape[1]):
            o, state = self.step_heads(x[:, t], state, t)            # (B, H, dh)
            outs.append(o)
        return torch.stack(outs, 1), state                           # (B, T, H, dh)

    def step(self, x_t: torch.Tensor, state: tuple[torch.Tensor, ...], pos
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x_t (B, d_model) or (B, 1, d_model) at position pos -> (y_t of the same shape, new state)."""
        o, state = self.step_heads(x_t.reshape(x_t.shape[0], self.d_model), state, pos)  # (B, H, dh)
        return self._project(o.flatten(1)).reshape(x_t.shape), state

    def prefill(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """x (B, T, d_model) -> (forward(x) (B, T, d_model), state after x)."""
        self.check_length(x.shape[1])
        h, state = self.prefill_heads(x)                             # (B, T, H, dh)
        return self._project(h.flatten(2)), state

    def _project(self, h: torch.Tensor) -> torch.Tensor:
        if self.out_proj is None:
            raise RuntimeError(f"attention '{self.name}' was built with out_proj=False; call heads()")
        return self.out_proj(h)

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
