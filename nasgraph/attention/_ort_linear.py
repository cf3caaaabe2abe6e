"""The causal linear recurrences as one op, `nasgraph::linear_recurrence`, for export to ONNX Runtime's
`com.microsoft.LinearAttention` (exporters/linear_attention.py holds the translation and the check that
the installed runtime has the op).

The op takes the layout of ORT's node: q (B, T, Hq*dk), k (B, T, Hk*dk), v (B, T, H*dv), the state
before (B, H, dk, dv), log-decay g (B, T, H) or (B, T, H*dk) (one per key dim) or None, beta (B, T, H)
or None, and an update rule; it returns o (B, T, H*dv) and the state after. Hq, Hk divide H (ORT's
"inverse GQA": kv head h reads q head h*Hq/H; SSD's q, k are shared by all heads: Hq = Hk = 1).
Checked against ORT's CPU kernel (onnxruntime 1.32, scale 1.0, no normalisation inside the op):

    linear:       S_t = S_{t-1} + k_t^T v_t                       (causal `linear`, cosformer: on [v, 1])
    gated:        S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t        (retention, ssd: per head; gla: per dim)
    delta:        S_t = (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t      (deltanet)
    gated_delta:  S_t = exp(g_t) (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t   (gated_deltanet)

and o_t = q_t S_t, state rows dk, columns dv. The eager body is our chunked form (`_recurrent`), so a
module calling it runs the same math whether exported or not. A layer calls it only while exporting
inside `fused_recurrence(True)` (set by the exporter when its translation table holds the op), so a
standard-ops export keeps the chunked decomposition.
"""
from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from nasgraph.attention._recurrent import decayed_linear, delta_rule

RULES = {"linear": (False, False), "gated": (True, False), "delta": (False, True),
         "gated_delta": (True, True)}  # update rule: (has a decay g, has a write strength beta)
_ENABLED = [False]


@contextlib.contextmanager
def fused_recurrence(on: bool = True) -> Iterator[None]:
    """Within: exported recurrent layers call `linear_recurrence` (one LinearAttention node)."""
    before, _ENABLED[0] = _ENABLED[0], on
    try:
        yield
    finally:
        _ENABLED[0] = before


def fused_enabled() -> bool:
    """Whether to emit `linear_recurrence`: exporting, inside `fused_recurrence(True)`."""
    return _ENABLED[0] and torch.compiler.is_exporting()


def rule_of(g: Tensor | None, beta: Tensor | None) -> str:
    """The update rule of a recurrence with (or without) a decay and a write strength."""
    return next(r for r, has in RULES.items() if has == (g is not None, beta is not None))


@torch.library.custom_op("nasgraph::linear_recurrence", mutates_args=())
def linear_recurrence(q: Tensor, k: Tensor, v: Tensor, state: Tensor, g: Optional[Tensor], beta: Optional[Tensor],
                      rule: str) -> tuple[Tensor, Tensor]:
    """q (B, T, Hq*dk), k (B, T, Hk*dk), v (B, T, H*dv), state (B, H, dk, dv), g (B, T, H | H*dk),
    beta (B, T, H) -> o (B, T, H*dv), state after (see the module doc)."""
    if rule not in RULES or RULES[rule] != (g is not None, beta is not None):
        raise ValueError(f"linear_recurrence: rule {rule!r} with g {g is not None}, beta {beta is not None}; "
                         f"valid: {', '.join(f'{r} (g {a}, beta {b})' for r, (a, b) in RULES.items())}")
    B, T = q.shape[:2]
    H, dk = state.shape[1], state.shape[2]

    def split(t: Tensor, d: int) -> Tensor:
        t = t.unflatten(-1, (-1, d)).transpose(1, 2)                   # (B, h, T, d)
        return t.repeat_interleave(H // t.shape[1], 1)                 # (B, H, T, d): head i reads i*h/H

    per_dim = g is not None and g.shape[-1] == H * dk
    C = max(1, min(16 if per_dim else 64, T))
    pad = (C - T % C) % C
    parts = ((q, dk), (k, dk), (v, state.shape[3]))
    qh, kh, vh = (F.pad(split(t, d), (0, 0, 0, pad)) for t, d in parts)  # (B, H, Tc, d)
    gh = q.new_zeros(B, H, T, 1) if g is None else g.unflatten(-1, (H, -1)).transpose(1, 2)  # (B, H, T, 1 | dk)
    gh = F.pad(gh, (0, 0, 0, pad))                                     # (B, H, Tc, 1 | dk)
    if beta is None:
        o, S = decayed_linear(qh, kh, vh, gh, C, None, state.clone())  # (B, H, Tc, dv)
    else:
        bh = F.pad(beta.transpose(1, 2)[..., None], (0, 0, 0, pad))   # (B, H, Tc, 1)
        o, S = delta_rule(qh, kh, vh, bh, gh if g is not None else None, C, state.clone())
    return o[:, :, :T].transpose(1, 2).flatten(2).contiguous(), S.contiguous()  # (B, T, H*dv)


@linear_recurrence.register_fake
def _(q, k, v, state, g, beta, rule):
    return v.new_empty(v.shape), state.new_empty(state.shape)


def fused_rule(q: Tensor, k: Tensor, v: Tensor, g: Tensor | None, beta: Tensor | None, S0: Tensor | None
               ) -> tuple[Tensor, Tensor]:
    """The recurrence of `_recurrent` through `linear_recurrence`, in its layout: q, k (B, Hq | Hk, T, dk)
    (Hq, Hk divide H), v (B, H, T, dv), g (B, H, T, 1 | dk), beta (B, H, T, 1), S0 (B, H, dk, dv) or None
    (zeros) -> (B, H, T, dv), (B, H, dk, dv)."""
    B, H, T, dv = v.shape
    S = v.new_zeros(B, H, q.shape[-1], dv) if S0 is None else S0       # (B, H, dk, dv)
    flat = [t.transpose(1, 2).flatten(2) for t in (q, k, v)]           # (B, T, h*d)
    gt = None if g is None else g.transpose(1, 2).flatten(2)          # (B, T, H | H*dk)
    bt = None if beta is None else beta[..., 0].transpose(1, 2)       # (B, T, H)
    o, S = linear_recurrence(*flat, S, gt, bt, rule_of(g, beta))
    return o.unflatten(-1, (H, -1)).transpose(1, 2), S                 # (B, H, T, dv)
