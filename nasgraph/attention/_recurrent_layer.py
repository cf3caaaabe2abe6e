"""Base of the recurrent (state-space) types: retention, gla, deltanet, gated_deltanet, ssd.

A subclass says how x maps to per-position queries, keys, values and gates (`inputs`); this base runs
the chunked training form (`heads`, see `_recurrent`) and the token-by-token decoding form
(`init_state` / `step`), both followed by the same per-head RMS norm and output gate:

    y_t = rms_norm(o_t + skip_t) * silu(x_t W_gate)      (per head; norm/gate optional)

A sequence longer than `block` positions runs by blocks, the state carried (`_by_blocks`: the
tensors of a block stay cache-sized; the exported graph is always one Scan over blocks).

Causal only: a recurrence reads the past. Padded positions are neutral: their keys, values, write
strengths (beta) and log-decays are zeroed, so the state passes over them unchanged.

`short_conv: K` adds the short causal convolution of Mamba-2 and of the flash-linear-attention layers
(`_short_conv`) on the projected q, k, v (ssd: x, B, C), before the normalisations; the decoding form
carries its last K - 1 inputs as a second state tensor ("conv").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from nasgraph.attention._by_blocks import by_blocks, runs_by_blocks
from nasgraph.attention._ort_linear import fused_enabled, fused_rule
from nasgraph.attention._recurrent import decayed_linear, decayed_step, delta_rule, delta_step
from nasgraph.attention._short_conv import ShortConv, convolved
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities

NORM_EPS = 1e-6


class RecurrentConfig(AttentionConfig):
    chunk: PositiveInt = 64  # positions per chunk of the training form (speed/memory only, same math)
    norm: bool = True        # per-head RMS norm of the output (RetNet's group norm, GLA/GDN head norm)
    gate: bool = True        # output gate silu(x W_gate) (RetNet, GLA, Gated DeltaNet, Mamba-2)
    short_conv: int = Field(0, ge=0, le=16)  # K: causal depthwise conv + SiLU on q, k, v (ssd: x, B, C); 0: none
    block: int = Field(1024, ge=0)  # longer inputs run by blocks of about this many positions, the state
    #                                carried (cache-sized tensors, see `_by_blocks`; exported: always); 0: never


@dataclass
class Inputs:
    """Per-position inputs of the recurrence, each (B, H, T, .)."""

    q: Tensor                   # (B, H, T, dk)
    k: Tensor                   # (B, H, T, dk)
    v: Tensor                   # (B, H, T, dv)
    g: Tensor | None = None     # (B, H, T, 1 or dk) log-decay <= 0; None: no decay
    beta: Tensor | None = None  # (B, H, T, 1) delta-rule write strength; None: decayed (additive) form
    skip: Tensor | None = None  # (B, H, T, dv) added to the output (SSD's D x)
    fixed: Tensor | None = None  # (1, H, 1, 1) when g is one fixed log-decay per head (retention), see decayed_linear
    shared: bool = False         # q, k the same for every head (SSD): the fused op reads head 0 only
    conv_tail: Tensor | None = None  # (B, K-1, c) the short convolution's inputs at the last K - 1 positions


def fused_heads(inp: Inputs, keep: Tensor | None, S0: Tensor | None) -> tuple[Tensor, Tensor]:
    """The recurrence over `inp` through `linear_recurrence` (one LinearAttention node when exported);
    keep (B, 1, T, 1) zeroes the padding's k, v, g and beta (neutral) -> (o + skip (B, H, T, dv), state)."""
    k, v, g, beta = (None if t is None else t if keep is None else t * keep
                     for t in (inp.k, inp.v, inp.g, inp.beta))          # (B, H, T, .)
    q, k = (inp.q[:, :1], k[:, :1]) if inp.shared else (inp.q, k)      # (B, 1 | H, T, dk)
    o, S = fused_rule(q, k, v, g, beta, S0)                            # (B, H, T, dv), (B, H, dk, dv)
    return (o if inp.skip is None else o + inp.skip), S


class RecurrentAttention(Attention):
    """Chunked training form + recurrent decoding form of a linear recurrence with a (dk, dv) state per head."""

    caps = Capabilities(causal=True, noncausal=False, linear=True, recurrent=True, decodable=True)
    Config: ClassVar[type[AttentionConfig]] = RecurrentConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate_proj = nn.Linear(self.d_model, self.inner) if self.config.gate else None
        self.short_conv: ShortConv | None = None                      # made by conv_over(channels)

    def conv_over(self, channels: int) -> None:
        """Create the short convolution (config.short_conv > 0) over `channels` projected features."""
        if self.config.short_conv:
            self.short_conv = ShortConv(channels, self.config.short_conv)

    def convolved(self, *parts: Tensor, history: Tensor | None = None) -> tuple[list[Tensor], Tensor | None]:
        """The short convolution over the parts (each (B, T, c)) and its next history; see `_short_conv`."""
        return convolved(self.short_conv, *parts, history=history)

    def qkv_projections(self, bias: bool = True) -> None:
        super().qkv_projections(bias)
        self.conv_over(3 * self.inner)

    def conv_qkv(self, x: Tensor, history: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """Projected (and short-convolved) queries, keys and values, each (B, H, T, dh), and the
        convolution's next history (None without one)."""
        (q, k, v), tail = self.convolved(self.q_proj(x), self.k_proj(x), self.v_proj(x), history=history)
        return self.split(q), self.split(k), self.split(v), tail

    # -- what a subclass gives ----------------------------------------------------------------------
    def inputs(self, x: Tensor, history: Tensor | None = None) -> Inputs:
        """x: (B, T, d_model) -> the recurrence's inputs (B, H, T, .); history: the short convolution's
        inputs before x (decoding), None at the start."""
        raise NotImplementedError

    @property
    def key_dim(self) -> int:
        """dk: rows of the state per head (the value width dv is head_dim)."""
        return self.head_dim

    # -- training form --------------------------------------------------------------------------------
    def heads(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.heads_and_state(x, mask)[0]

    def heads_and_state(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """Heads (B, T, H, dv) and the state after the last position: ((B, H, dk, dv), plus the short
        convolution's last K - 1 projections (B, K-1, c) when it has one). The chunked form, by blocks
        of about config.block positions when longer (and when exported), see `_by_blocks`."""
        B, T = x.shape[:2]
        init = tuple(x.new_zeros(B, *shape[1:]) for _, shape in self.state_shapes())  # zeros: the start
        keep = None if mask is None else mask.to(x.dtype)              # (B, T)
        fixed_ok = mask is None                                        # blocks pad at the end only

        def form(x_b: Tensor, keep_b: Tensor | None, state: tuple[Tensor, ...] | None):
            return self.chunked_form(x_b, keep_b, state, fixed_ok)

        heads, state = by_blocks(self, form, x, keep, init, self.config.block, self.config.chunk)
        if self.short_conv is not None and runs_by_blocks(T, self.config.block):
            # the last block's convolution history ends in its padding: the real last K - 1 inputs
            state = state[:1] + self.conv_state(self.inputs(x[:, -(self.short_conv.kernel - 1):]))
        return heads, state

    def chunked_form(self, x: Tensor, keep: Tensor | None, state: tuple[Tensor, ...] | None,
                     fixed_ok: bool = True) -> tuple[Tensor, tuple[Tensor, ...]]:
        """x (B, T, d_model), keep (B, T) 1.0 / 0.0 (None: all real), state: the state before x (None:
        the start) -> (heads (B, T, H, dv), the state after x). fixed_ok: padding (keep 0.0) only
        after every real position, so retention's fixed pair decays are exact."""
        T, C = x.shape[1], self.config.chunk
        S0, history = (None, None) if state is None else (state[0], (*state[1:], None)[0])
        inp = self.inputs(x, history)                                  # (B, H, T, .)
        keep = None if keep is None else keep[:, None, :, None]        # (B, 1, T, 1)
        if fused_enabled():                                            # exported: one LinearAttention node
            o, S = fused_heads(inp, keep, S0)                          # (B, H, T, dv), (B, H, dk, dv)
            return self.finish(o.transpose(1, 2), x), (S,) + self.conv_state(inp)  # (B, T, H, dv)
        pad = (C - T % C) % C                                          # no branch: T may be symbolic
        k, v, g, beta = (None if t is None else F.pad(t if keep is None else t * keep, (0, 0, 0, pad))
                         for t in (inp.k, inp.v, inp.g, inp.beta))     # (B, H, Tc, .) padded: neutral
        q = F.pad(inp.q, (0, 0, 0, pad))                               # (B, H, Tc, dk)
        if beta is None:
            fixed = inp.fixed if fixed_ok else None                    # with padding: decays per position
            o, S = decayed_linear(q, k, v, g, C, fixed, S0)            # (B, H, Tc, dv), (B, H, dk, dv)
        else:
            o, S = delta_rule(q, k, v, beta, g, C, S0)                 # (B, H, Tc, dv), (B, H, dk, dv)
        o = o[:, :, :T]                                                # (B, H, T, dv)
        if inp.skip is not None:
            o = o + inp.skip
        return self.finish(o.transpose(1, 2), x), (S,) + self.conv_state(inp)  # (B, T, H, dv)

    def finish(self, o: Tensor, x: Tensor) -> Tensor:
        """Per-head RMS norm and output gate: o (..., H, dv), x (..., d_model) -> (..., H, dv)."""
        if self.config.norm:
            o = o * torch.rsqrt(o.square().mean(-1, keepdim=True) + NORM_EPS)
        if self.gate_proj is not None:
            o = o * F.silu(self.gate_proj(x)).unflatten(-1, (self.n_heads, -1))
        return o

    # -- decoding form: one (dk, dv) state per head -----------------------------------------------------
    def state_shapes(self, batch="B"):
        conv = self.short_conv
        return [("state", (batch, self.n_heads, self.key_dim, self.head_dim))] + (
            [conv.state_shape(batch)] if conv is not None else [])

    def conv_state(self, inp: Inputs) -> tuple[Tensor, ...]:
        """The short convolution's part of the state: (the last K - 1 projections,), or () without one."""
        return () if self.short_conv is None else (inp.conv_tail,)

    def prefill_heads(self, x: Tensor) -> tuple[Tensor, tuple[Tensor, ...]]:
        h, state = self.heads_and_state(x)
        return h, state

    def step_heads(self, x_t: Tensor, state: tuple[Tensor, ...], pos=None) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One token: x_t (B, d_model), state ((B, H, dk, dv)[, conv (B, K-1, c)]) -> (B, H, dv), new state."""
        inp = self.inputs(x_t[:, None], *state[1:])                    # (B, H, 1, .)
        if fused_enabled():                                            # exported: one LinearAttention node
            o, S = fused_heads(inp, None, state[0])                    # (B, H, 1, dv), (B, H, dk, dv)
            return self.finish(o[:, :, 0], x_t), (S,) + self.conv_state(inp)  # (B, H, dv)
        q, k, v = inp.q[:, :, 0], inp.k[:, :, 0], inp.v[:, :, 0]       # (B, H, dk | dv)
        g = None if inp.g is None else inp.g[:, :, 0]                  # (B, H, 1 | dk)
        if inp.beta is None:
            o, S = decayed_step(state[0], q, k, v, g)
        else:
            o, S = delta_step(state[0], q, k, v, inp.beta[:, :, 0], g)
        if inp.skip is not None:
            o = o + inp.skip[:, :, 0]
        return self.finish(o, x_t), (S,) + self.conv_state(inp)        # (B, H, dv)
