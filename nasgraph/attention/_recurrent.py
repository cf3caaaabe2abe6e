"""Chunked kernels of the recurrent (state-space) family: decayed linear attention and the delta rule.

Both keep a state S per head, (dk, dv), and read it with the query: o_t = q_t S_t (q_t a row vector).

    decayed:  S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t            (retention, GLA, SSD)
    delta:    S_t = exp(g_t) (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t   (DeltaNet, Gated DeltaNet)

g_t <= 0 is a log-decay, a scalar per head (shape (..., 1)) or one per key dimension (..., dk).

Training form: the sequence is cut into chunks of C positions. Inside a chunk everything is a batched
matrix product over all chunks at once (a masked C x C attention with exact decays, exp of differences
of cumulative log-decays, never exp of a cumulative sum alone, so nothing overflows). Between chunks
the state is passed on by `scan_chunks`: a Python loop over chunks in eager mode (one step costs a few
small products, no per-token work), `torch.ops.higher_order.scan` under torch.export, which becomes
one ONNX Scan node, so the exported graph keeps a dynamic sequence length.

The delta rule's chunk form is the WY/UT representation of Yang et al. 2024 (arXiv 2406.06484):
U~ = T (b V) - T (b k exp(G)) S with T = (I + tril(diag(b) K K^T * decay, -1))^{-1}, the inverse by
forward substitution over the C rows (a fixed count, so it exports).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

NEG_BIG = -1e9  # exp(NEG_BIG) == 0: log-decay differences of pairs that must not interact


def scan_chunks(step: Callable[..., tuple[Tensor, Tensor]], init: Tensor, xs: tuple[Tensor, ...]
                ) -> tuple[Tensor, Tensor]:
    """carry, y_n = step(carry, *[x[n] for x in xs]) over n = 0..N-1 -> (last carry, stacked y (N, ...))."""
    if torch.compiler.is_compiling():  # torch.export / compile: one ONNX Scan, dynamic N
        from torch._higher_order_ops.scan import scan

        return scan(lambda c, x: step(c, *x), init, xs)
    carry, ys = init, []
    for n in range(xs[0].shape[0]):                                   # chunks, not tokens
        carry, y = step(carry, *(x[n] for x in xs))
        ys.append(y)
    return carry, torch.stack(ys)


def chunks(t: Tensor, chunk: int) -> Tensor:
    """(B, H, T, d) -> (B, H, n, C, d); T must be a multiple of chunk."""
    return t.unflatten(2, (t.shape[2] // chunk, chunk))


def chunks_first(t: Tensor) -> Tensor:
    """(B, H, n, ...) -> (n, B, H, ...): the chunk axis first, for scan_chunks."""
    return t.movedim(2, 0)


def pair_decay(G: Tensor, diagonal: bool = True) -> Tensor:
    """exp(G_i - G_j) for j <= i (j < i when diagonal=False), else 0: (..., C, 1) -> (..., C, C)."""
    C = G.shape[-2]
    keep = torch.ones(C, C, dtype=torch.bool, device=G.device).tril(0 if diagonal else -1)
    diff = G - G.transpose(-2, -1)                                    # (..., C, C)
    return torch.exp(torch.where(keep, diff, diff.new_full((), NEG_BIG)))


def decayed_linear(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk: int) -> Tensor:
    """q, k: (B, H, T, dk), v: (B, H, T, dv), g: (B, H, T, 1 or dk) -> (B, H, T, dv); T % chunk == 0."""
    qc, kc, vc, gc = (chunks(t, chunk) for t in (q, k, v, g))        # (B, H, n, C, .)
    G = gc.cumsum(3)                                                  # (B, H, n, C, 1|dk) inclusive
    last = G[..., -1:, :]                                             # (B, H, n, 1, 1|dk)
    if g.shape[-1] == 1:                                              # scalar decay: a C x C mask
        scores = (qc @ kc.transpose(-2, -1)) * pair_decay(G)          # (B, H, n, C, C)
    else:                                                             # per key dim: (C, C, dk) decays
        C = chunk
        keep = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()[..., None]  # (C, C, 1)
        diff = G[..., :, None, :] - G[..., None, :, :]                # (B, H, n, C, C, dk)
        decay = torch.exp(torch.where(keep, diff, diff.new_full((), NEG_BIG)))
        scores = torch.einsum("bhnik,bhnijk->bhnij", qc, decay * kc[..., None, :, :])  # (B, H, n, C, C)
    intra = scores @ vc                                               # (B, H, n, C, dv)
    update = (kc * torch.exp(last - G)).transpose(-2, -1) @ vc        # (B, H, n, dk, dv)
    carry = torch.exp(last).transpose(-2, -1)                         # (B, H, n, 1|dk, 1)

    def step(S: Tensor, d: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        return d * S + u, S + 0                                       # next state, state before

    B, H, _, _, dv = vc.shape
    S0 = q.new_zeros(B, H, q.shape[-1], dv)                           # (B, H, dk, dv)
    _, before = scan_chunks(step, S0, (chunks_first(carry), chunks_first(update)))  # (n, B, H, dk, dv)
    inter = (qc * torch.exp(G)) @ before.movedim(0, 2)                # (B, H, n, C, dv)
    return (inter + intra).flatten(2, 3)                              # (B, H, T, dv)


def unit_lower_inverse(L: Tensor) -> Tensor:
    """(I + L)^{-1} for strictly lower-triangular L: (..., C, C), by forward substitution (C - 1 steps)."""
    C = L.shape[-1]
    inv = torch.eye(C, dtype=L.dtype, device=L.device).expand_as(L)   # (..., C, C)
    for j in range(C - 1):                                            # row j of inv is final here
        inv = inv - L[..., :, j:j + 1] * inv[..., j:j + 1, :]         # remove its share from later rows
    return inv


def delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, chunk: int) -> Tensor:
    """q, k: (B, H, T, dk), v: (B, H, T, dv), beta: (B, H, T, 1), g: (B, H, T, 1) or None (no decay)
    -> (B, H, T, dv); T % chunk == 0."""
    qc, kc, vc, bc = (chunks(t, chunk) for t in (q, k, v, beta))     # (B, H, n, C, .)
    kb = kc * bc                                                      # (B, H, n, C, dk)
    if g is None:
        C = chunk
        strict = torch.ones(C, C, dtype=torch.bool, device=q.device).tril(-1)
        L = (kb @ kc.transpose(-2, -1)).masked_fill(~strict, 0.0)     # (B, H, n, C, C)
        qk = (qc @ kc.transpose(-2, -1)).masked_fill(strict.T, 0.0)   # (B, H, n, C, C) j <= i
        kd, qd, carry = kc, qc, None
    else:
        G = chunks(g, chunk).cumsum(3)                                # (B, H, n, C, 1)
        last = G[..., -1:, :]                                         # (B, H, n, 1, 1)
        L = (kb @ kc.transpose(-2, -1)) * pair_decay(G, diagonal=False)  # (B, H, n, C, C)
        qk = (qc @ kc.transpose(-2, -1)) * pair_decay(G)              # (B, H, n, C, C)
        kb = kb * torch.exp(G)                                        # decay from the chunk start
        kd, qd = kc * torch.exp(last - G), qc * torch.exp(G)          # (B, H, n, C, dk)
        carry = chunks_first(torch.exp(last))                         # (n, B, H, 1, 1)
    T_inv = unit_lower_inverse(L)                                     # (B, H, n, C, C)
    W, U = T_inv @ kb, T_inv @ (vc * bc)                              # (B, H, n, C, dk), (B, H, n, C, dv)

    def step(S: Tensor, w: Tensor, u: Tensor, kd_n: Tensor, *d: Tensor) -> tuple[Tensor, Tensor]:
        new_u = u - w @ S                                             # (B, H, C, dv) pseudo-values
        S_next = (d[0] * S if d else S) + kd_n.transpose(-2, -1) @ new_u
        return S_next, torch.cat([S, new_u], dim=-2)                  # (B, H, dk + C, dv)

    B, H, _, dk = q.shape
    S0 = q.new_zeros(B, H, dk, vc.shape[-1])                          # (B, H, dk, dv)
    xs = tuple(chunks_first(t) for t in (W, U, kd)) + ((carry,) if carry is not None else ())
    _, ys = scan_chunks(step, S0, xs)                                 # (n, B, H, dk + C, dv)
    ys = ys.movedim(0, 2)                                             # (B, H, n, dk + C, dv)
    before, new_u = ys[..., :dk, :], ys[..., dk:, :]                  # (B, H, n, dk, dv), (B, H, n, C, dv)
    return (qd @ before + qk @ new_u).flatten(2, 3)                   # (B, H, T, dv)


# -- one token: the recurrent (decoding) form ---------------------------------------------------------
def decayed_step(S: Tensor, q: Tensor, k: Tensor, v: Tensor, g: Tensor) -> tuple[Tensor, Tensor]:
    """S: (B, H, dk, dv); q, k: (B, H, dk), v: (B, H, dv), g: (B, H, 1 or dk) -> (o (B, H, dv), S)."""
    S = torch.exp(g)[..., None] * S + k[..., :, None] * v[..., None, :]   # (B, H, dk, dv)
    return (q[..., None, :] @ S)[..., 0, :], S


def delta_step(S: Tensor, q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None
               ) -> tuple[Tensor, Tensor]:
    """S: (B, H, dk, dv); q, k: (B, H, dk), v: (B, H, dv), beta, g: (B, H, 1) -> (o (B, H, dv), S)."""
    if g is not None:
        S = torch.exp(g)[..., None] * S                               # (B, H, dk, dv)
    new_v = beta * (v - (k[..., None, :] @ S)[..., 0, :])            # (B, H, dv)
    S = S + k[..., :, None] * new_v[..., None, :]                     # (B, H, dk, dv)
    return (q[..., None, :] @ S)[..., 0, :], S
