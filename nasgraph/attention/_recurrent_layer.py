"""Base of the recurrent (state-space) types: retention, gla, deltanet, gated_deltanet, ssd.

A subclass says how x maps to per-position queries, keys, values and gates (`inputs`); this base runs
the chunked training form (`heads`, see `_recurrent`) and the token-by-token decoding form
(`init_state` / `step`), both followed by the same per-head RMS norm and output gate:

    y_t = rms_norm(o_t + skip_t) * silu(x_t W_gate)      (per head; norm/gate optional)

Causal only: a recurrence reads the past. Padded positions are neutral: their keys, values, write
strengths (beta) and log-decays are zeroed, so the state passes over them unchanged.

`short_conv: K` adds the short causal convolution of Mamba-2 and of the flash-linear-attention layers:
a depthwise convolution over the last K positions plus SiLU on the projected q, k, v (ssd: x, B, C),
before the normalisations. It lets one layer mix a token with its predecessors (the key-value
binding that recall needs). Exact in the chunked form (a zero history at the start; padding sits
after the real tokens, so no real position reads it); the decoding form would carry the last K - 1
projections as a second state and is refused for now (`step` raises).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, PositiveInt
from torch import Tensor, nn

from nasgraph.attention._recurrent import decayed_linear, decayed_step, delta_rule, delta_step
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities

NORM_EPS = 1e-6


class RecurrentConfig(AttentionConfig):
    chunk: PositiveInt = 64  # positions per chunk of the training form (speed/memory only, same math)
    norm: bool = True        # per-head RMS norm of the output (RetNet's group norm, GLA/GDN head norm)
    gate: bool = True        # output gate silu(x W_gate) (RetNet, GLA, Gated DeltaNet, Mamba-2)
    short_conv: int = Field(0, ge=0, le=16)  # K: causal depthwise conv + SiLU on q, k, v (ssd: x, B, C); 0: none


class ShortConv(nn.Module):
    """Depthwise causal convolution over time plus SiLU: (B, T, C) -> (B, T, C); y_t reads u_{t-K+1..t}."""

    def __init__(self, channels: int, kernel: int):
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, groups=channels)
        self.kernel = kernel

    def forward(self, u: Tensor) -> Tensor:
        y = self.conv(F.pad(u.transpose(1, 2), (self.kernel - 1, 0)))  # (B, C, T): zeros before the start
        return F.silu(y).transpose(1, 2)                                # (B, T, C)


@dataclass
class Inputs:
    """Per-position inputs of the recurrence, each (B, H, T, .)."""

    q: Tensor                   # (B, H, T, dk)
    k: Tensor                   # (B, H, T, dk)
    v: Tensor                   # (B, H, T, dv)
    g: Tensor | None = None     # (B, H, T, 1 or dk) log-decay <= 0; None: no decay
    beta: Tensor | None = None  # (B, H, T, 1) delta-rule write strength; None: decayed (additive) form
    skip: Tensor | None = None  # (B, H, T, dv) added to the output (SSD's D x)


class RecurrentAttention(Attention):
    """Chunked training form + recurrent decoding form of a linear recurrence with a (dk, dv) state per head."""

    caps = Capabilities(causal=True, noncausal=False, linear=True, recurrent=True)
    Config: ClassVar[type[AttentionConfig]] = RecurrentConfig

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.gate_proj = nn.Linear(self.d_model, self.inner) if self.config.gate else None
        self.short_conv: ShortConv | None = None                      # made by conv_over(channels)

    def conv_over(self, channels: int) -> None:
        """Create the short convolution (config.short_conv > 0) over `channels` projected features."""
        if self.config.short_conv:
            self.short_conv = ShortConv(channels, self.config.short_conv)

    def convolved(self, *parts: Tensor) -> list[Tensor]:
        """The short convolution over the concatenated parts (each (B, T, c)), split back; as-is if off."""
        if self.short_conv is None:
            return list(parts)
        return list(self.short_conv(torch.cat(parts, -1)).split([p.shape[-1] for p in parts], -1))

    def qkv_projections(self, bias: bool = True) -> None:
        super().qkv_projections(bias)
        self.conv_over(3 * self.inner)

    def qkv(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Projected (and short-convolved) queries, keys and values, each (B, H, T, dh)."""
        q, k, v = self.convolved(self.q_proj(x), self.k_proj(x), self.v_proj(x))  # (B, T, H*dh)
        return self.split(q), self.split(k), self.split(v)

    # -- what a subclass gives ----------------------------------------------------------------------
    def inputs(self, x: Tensor) -> Inputs:
        """x: (B, T, d_model) -> the recurrence's inputs (B, H, T, .)."""
        raise NotImplementedError

    @property
    def key_dim(self) -> int:
        """dk: rows of the state per head (the value width dv is head_dim)."""
        return self.head_dim

    # -- training form --------------------------------------------------------------------------------
    def heads(self, x: Tensor, mask: Tensor | None = None) -> Tensor:
        T, C = x.shape[1], self.config.chunk
        inp = self.inputs(x)                                           # (B, H, T, .)
        keep = None if mask is None else mask[:, None, :, None].to(x.dtype)  # (B, 1, T, 1)
        pad = (C - T % C) % C                                          # no branch: T may be symbolic
        k, v, g, beta = (None if t is None else F.pad(t if keep is None else t * keep, (0, 0, 0, pad))
                         for t in (inp.k, inp.v, inp.g, inp.beta))     # (B, H, Tc, .) padded: neutral
        q = F.pad(inp.q, (0, 0, 0, pad))                               # (B, H, Tc, dk)
        if beta is None:
            o = decayed_linear(q, k, v, g, C)                          # (B, H, Tc, dv)
        else:
            o = delta_rule(q, k, v, beta, g, C)                        # (B, H, Tc, dv)
        o = o[:, :, :T]                                                # (B, H, T, dv)
        if inp.skip is not None:
            o = o + inp.skip
        return self.finish(o.transpose(1, 2), x)                       # (B, T, H, dv)

    def finish(self, o: Tensor, x: Tensor) -> Tensor:
        """Per-head RMS norm and output gate: o (..., H, dv), x (..., d_model) -> (..., H, dv)."""
        if self.config.norm:
            o = o * torch.rsqrt(o.square().mean(-1, keepdim=True) + NORM_EPS)
        if self.gate_proj is not None:
            o = o * F.silu(self.gate_proj(x)).unflatten(-1, (self.n_heads, -1))
        return o

    # -- decoding form (caps.recurrent) ---------------------------------------------------------------
    def init_state(self, batch: int, *, device: torch.device | None = None,
                   dtype: torch.dtype | None = None) -> Tensor:
        """The state before the first token: zeros (B, H, dk, dv), on the parameters' device and dtype
        unless given."""
        weight = next(self.parameters())
        return torch.zeros(batch, self.n_heads, self.key_dim, self.head_dim, device=device or weight.device,
                           dtype=dtype or weight.dtype)

    def step_heads(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: x_t (B, d_model), state (B, H, dk, dv) -> per-head output (B, H, dv), new state."""
        if self.short_conv is not None:
            raise NotImplementedError(f"attention '{self.name}' with short_conv {self.config.short_conv} has no "
                                      f"decoding form yet (its state would carry the last K - 1 projections); "
                                      f"use short_conv: 0 to decode token by token")
        inp = self.inputs(x_t[:, None])                                # (B, H, 1, .)
        q, k, v = inp.q[:, :, 0], inp.k[:, :, 0], inp.v[:, :, 0]       # (B, H, dk | dv)
        g = None if inp.g is None else inp.g[:, :, 0]                  # (B, H, 1 | dk)
        if inp.beta is None:
            o, state = decayed_step(state, q, k, v, g)
        else:
            o, state = delta_step(state, q, k, v, inp.beta[:, :, 0], g)
        if inp.skip is not None:
            o = o + inp.skip[:, :, 0]
        return self.finish(o, x_t), state                              # (B, H, dv)

    def step(self, x_t: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One token: x_t (B, d_model), state (B, H, dk, dv) -> output (B, d_model), new state."""
        o, state = self.step_heads(x_t, state)
        if self.out_proj is None:
            raise RuntimeError(f"attention '{self.name}' was built with out_proj=False; call step_heads()")
        return self.out_proj(o.flatten(1)), state
