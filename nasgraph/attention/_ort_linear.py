"""The delta-rule recurrence as one op, `nasgraph::delta_recurrence`, for export to ONNX Runtime's
`com.microsoft.LinearAttention` (update_rule "delta" / "gated_delta"; exporters/linear_attention.py
holds the translation and the check that the installed runtime has the op).

The op takes the layout of ORT's node: q, k, v (B, T, H*d), the state before (B, H, dk, dv), log-decay
g (B, T, H) (ignored when gated is False) and beta (B, T, H); it returns o (B, T, H*dv) and the state
after. Its eager body is the chunked delta rule (`_recurrent.delta_rule`), so a module calling it runs
the same math whether exported or not. Checked against ORT's CPU kernel (onnxruntime 1.32, scale 1.0,
no normalisation inside the op): S_t = exp(g_t) (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t,
o_t = q_t S_t, state rows dk, columns dv.

A recurrent layer calls it only while exporting inside `fused_delta(True)` (set by the exporter when its
translation table holds the op), so a standard-ops export keeps the chunked decomposition.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch
from torch import Tensor

from nasgraph.attention._recurrent import delta_rule

_ENABLED = [False]


@contextlib.contextmanager
def fused_delta(on: bool = True) -> Iterator[None]:
    """Within: exported delta-rule layers call `delta_recurrence` (one LinearAttention node)."""
    before, _ENABLED[0] = _ENABLED[0], on
    try:
        yield
    finally:
        _ENABLED[0] = before


def fused_delta_enabled() -> bool:
    """Whether to emit `delta_recurrence`: exporting, inside `fused_delta(True)`."""
    return _ENABLED[0] and torch.compiler.is_exporting()


@torch.library.custom_op("nasgraph::delta_recurrence", mutates_args=())
def delta_recurrence(q: Tensor, k: Tensor, v: Tensor, state: Tensor, g: Tensor, beta: Tensor, heads: int,
                     gated: bool) -> tuple[Tensor, Tensor]:
    """q, k (B, T, H*dk), v (B, T, H*dv), state (B, H, dk, dv), g, beta (B, T, H) -> o (B, T, H*dv), state."""
    def split(t: Tensor) -> Tensor:
        return t.unflatten(-1, (heads, -1)).transpose(1, 2)           # (B, H, T, d)

    T = q.shape[1]
    C = max(1, min(64, T))
    pad = (C - T % C) % C
    qh, kh, vh = (torch.nn.functional.pad(split(t), (0, 0, 0, pad)) for t in (q, k, v))  # (B, H, Tc, d)
    bh, gh = (torch.nn.functional.pad(t.transpose(1, 2)[..., None], (0, 0, 0, pad)) for t in (beta, g))  # (B, H, Tc, 1)
    o, S = delta_rule(qh, kh, vh, bh, gh if gated else None, C, state.clone())  # (B, H, Tc, dv)
    return o[:, :, :T].transpose(1, 2).flatten(2).contiguous(), S.contiguous()  # (B, T, H*dv)


@delta_recurrence.register_fake
def _(q, k, v, state, g, beta, heads, gated):
    return v.new_empty(v.shape), state.new_empty(state.shape)


def fused_delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, S0: Tensor | None
                     ) -> tuple[Tensor, Tensor]:
    """`_recurrent.delta_rule`'s contract without chunk padding, through `delta_recurrence`:
    q, k (B, H, T, dk), v (B, H, T, dv), beta, g (B, H, T, 1) -> (B, H, T, dv), (B, H, dk, dv)."""
    B, H, T, dk = q.shape
    S = q.new_zeros(B, H, dk, v.shape[-1]) if S0 is None else S0     # (B, H, dk, dv)
    flat = [t.transpose(1, 2).flatten(2) for t in (q, k, v)]          # (B, T, H*d)
    gt = beta.new_zeros(beta.shape) if g is None else g               # (B, H, T, 1)
    o, S = delta_recurrence(*flat, S, gt[..., 0].transpose(1, 2), beta[..., 0].transpose(1, 2), H, g is not None)
    return o.unflatten(-1, (H, -1)).transpose(1, 2), S                # (B, H, T, dv)
