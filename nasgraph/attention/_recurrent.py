"""Chunked kernels of the recurrent (state-space) family: decayed linear attention and the delta rule.

Both keep a state S per head, (dk, dv), and read it with the query: o_t = q_t S_t (q_t a row vector).

    decayed:  S_t = diag(exp(g_t)) S_{t-1} + k_t^T v_t            (retention, GLA, SSD)
    delta:    S_t = exp(g_t) (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t   (DeltaNet, Gated DeltaNet)

g_t <= 0 is a log-decay, a scalar per head (shape (..., 1)) or one per key dimension (..., dk).

Training form: the sequence is cut into chunks of C positions. Inside a chunk everything is a batched
matrix product over all chunks at once (a masked C x C attention with exact decays, exp of differences
of cumulative log-decays, never exp of a cumulative sum alone, so nothing overflows). Between chunks
the state is passed on by `scan_chunks`: a Python loop over chunks in eager mode (one step costs a few
small products, no per-token work; torch.compile unrolls it), `torch.ops.higher_order.scan` under
torch.export, which becomes one ONNX Scan node, so the exported graph keeps a dynamic sequence length.

The delta rule's chunk form is the WY/UT representation of Yang et al. 2024 (arXiv 2406.06484):
U~ = T (b V - b k exp(G) S) with T = (I + tril(diag(b) K K^T * decay, -1))^{-1}, the inverse by
a triangular solve (eager) or in halves, log2(C) levels of products (exported: a fixed count).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils._pytree import tree_map

NEG_BIG = -1e9  # exp(NEG_BIG) == 0: log-decay differences of pairs that must not interact


def scan_chunks(step: Callable[..., tuple[Any, Tensor]], init: Any, xs: tuple[Tensor, ...]
                ) -> tuple[Any, Tensor]:
    """carry, y_n = step(carry, *[x[n] for x in xs]) over n = 0..N-1 -> (last carry, stacked y (N, ...)).

    The carry is a tensor or a tuple of tensors; y_n may be a tuple of tensors: each is stacked.
    """
    if torch.compiler.is_exporting():  # torch.export (inference): one ONNX Scan node, dynamic N
        from torch._higher_order_ops.scan import scan

        # detached: scan's autograd wrapper saves symbolic sizes that the ONNX decomposition rejects
        return scan(lambda c, x: step(c, *x), tree_map(Tensor.detach, init), tuple(x.detach() for x in xs))
    carry, ys = init, []
    for n in range(xs[0].shape[0]):                                   # chunks, not tokens
        carry, y = step(carry, *(x[n] for x in xs))
        ys.append(y)
    if isinstance(ys[0], tuple):
        return carry, tuple(torch.stack(parts) for parts in zip(*ys))
    return carry, torch.stack(ys)


def initial_state(q: Tensor, v: Tensor, S0: Tensor | None) -> Tensor:
    """S0, or zeros (B, H, dk, dv) for q (B, H, T, dk), v (B, H, T, dv)."""
    return q.new_zeros(*q.shape[:2], q.shape[-1], v.shape[-1]) if S0 is None else S0


def chunks(t: Tensor, chunk: int) -> Tensor:
    """(B, H, T, d) -> (B, H, n, C, d); T must be a multiple of chunk."""
    return t.unflatten(2, (t.shape[2] // chunk, chunk))


def chunks_first(t: Tensor) -> Tensor:
    """(B, H, n, ...) -> (n, B, H, ...): the chunk axis first, for scan_chunks."""
    return t.movedim(2, 0).contiguous()


def segment_sums(g: Tensor, diagonal: bool = True) -> Tensor:
    """s[i, j] = g_{j+1} + ... + g_i for j <= i (j < i when diagonal=False), NEG_BIG above:
    (..., C, d) -> (..., C, C, d).

    Summed term by term (a masked cumsum), not as G_i - G_j of cumulative sums: with strong decays
    G is large and the difference would lose the digits that matter.
    """
    C = g.shape[-2]
    below = torch.ones(C, C, dtype=torch.bool, device=g.device).tril(-1)[..., None]  # (C, C, 1) j < i
    terms = torch.where(below, g[..., :, None, :], g.new_zeros(()))   # (..., C, C, d): g_i where j < i
    sums = terms.cumsum(-3)                                           # (..., C, C, d)
    keep = below | torch.eye(C, dtype=torch.bool, device=g.device)[..., None] if diagonal else below
    return torch.where(keep, sums, g.new_full((), NEG_BIG))


def chunk_decays(g: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Log-decays of chunks (..., C, d) -> exp of: from the chunk start to i (inclusive), from j to the
    chunk end (exclusive of j), the whole chunk, and i <- j pairs (j <= i; else 0).

    Shapes (..., C, d), (..., C, d), (..., 1, d), (..., C, C, d).
    """
    pairs = segment_sums(g)                                           # (..., C, C, d)
    G = g.cumsum(-2)                                                  # (..., C, d)
    to_end = pairs[..., -1, :, :]                                     # (..., C, d): g_{j+1..C-1}
    return torch.exp(G), torch.exp(to_end), torch.exp(G[..., -1:, :]), torch.exp(pairs)


def decayed_linear(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk: int, fixed: Tensor | None = None,
                   S0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """q, k: (B, H, T, dk), v: (B, H, T, dv), g: (B, H, T, 1 or dk) -> (out (B, H, T, dv), final state
    (B, H, dk, dv)); T % chunk == 0. S0: the state before position 0 (None: zeros).

    fixed: (1 or B, H, 1, 1) when g is one fixed log-decay per head (g = fixed at every real position,
    0 at padding): the (C, C) pair decays are then the same in every chunk and are made once, not as a
    (B, H, T/C, C, C) tensor (exact for every real position: a pair never spans padding).
    """
    if g.shape[-1] != 1:
        return decayed_linear_per_dim(q, k, v, g, chunk, S0)
    qc, kc, vc, gc = (chunks(t, chunk) for t in (q, k, v, g))        # (B, H, n, C, .)
    if fixed is None:
        from_start, to_end, whole, pairs = chunk_decays(gc)           # see chunk_decays
    else:
        G = gc.cumsum(-2)                                             # (B, H, n, C, 1)
        from_start, whole = torch.exp(G), torch.exp(G[..., -1:, :])  # (B, H, n, C | 1, 1)
        to_end = torch.exp(G[..., -1:, :] - G)                        # (B, H, n, C, 1); |G| <= C |fixed|: no digits lost
        pairs = torch.exp(segment_sums(fixed.expand(-1, -1, chunk, -1)))[:, :, None]  # (1 | B, H, 1, C, C, 1)
    scores = (qc @ kc.transpose(-2, -1)) * pairs[..., 0]              # (B, H, n, C, C)
    intra = scores @ vc                                               # (B, H, n, C, dv)
    update = (kc * to_end).transpose(-2, -1) @ vc                     # (B, H, n, dk, dv)
    carry = whole.transpose(-2, -1)                                   # (B, H, n, 1, 1)

    def step(S: Tensor, d: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        return d * S + u, S + 0                                       # next state, state before

    S0 = initial_state(q, v, S0)                                      # (B, H, dk, dv)
    last, before = scan_chunks(step, S0, (chunks_first(carry), chunks_first(update)))  # (n, B, H, dk, dv)
    inter = (qc * from_start) @ before.movedim(0, 2)                  # (B, H, n, C, dv)
    return (inter + intra).flatten(2, 3), last                        # (B, H, T, dv), (B, H, dk, dv)


def decayed_linear_per_dim(q: Tensor, k: Tensor, v: Tensor, g: Tensor, chunk: int, S0: Tensor | None = None
                           ) -> tuple[Tensor, Tensor]:
    """decayed_linear with a decay per key dim, g: (B, H, T, dk).

    The pair decays are a (C, C, dk) tensor per chunk, so each chunk is done whole inside the scan step:
    its temporaries stay cache-sized instead of a (T, C, dk) tensor per head. They are differences of
    cumulative log-decays from the chunk start (relative error ~ 1e-7 |sum of the chunk's log-decays|,
    fine at GLA's gate scale; the exact segment sums of the scalar path would double this step's cost).
    """

    C = chunk
    keep = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()[..., None]  # (C, C, 1) j <= i

    def step(S: Tensor, q_n: Tensor, k_n: Tensor, v_n: Tensor, g_n: Tensor) -> tuple[Tensor, Tensor]:
        G = g_n.cumsum(-2)                                            # (B, H, C, dk) from the chunk start
        last = G[..., -1:, :]                                         # (B, H, 1, dk)
        diff = G[..., :, None, :] - G[..., None, :, :]                # (B, H, C, C, dk)
        pairs = torch.exp(torch.where(keep, diff, diff.new_full((), NEG_BIG)))
        from_start, to_end, whole = torch.exp(G), torch.exp(last - G), torch.exp(last)
        scores = torch.einsum("bhik,bhijk->bhij", q_n, pairs * k_n[..., None, :, :])  # (B, H, C, C)
        out = scores @ v_n + (q_n * from_start) @ S                   # (B, H, C, dv)
        S = whole.transpose(-2, -1) * S + (k_n * to_end).transpose(-2, -1) @ v_n  # (B, H, dk, dv)
        return S, out

    S0 = initial_state(q, v, S0)                                      # (B, H, dk, dv)
    xs = tuple(chunks_first(chunks(t, chunk)) for t in (q, k, v, g))  # (n, B, H, C, .)
    last, out = scan_chunks(step, S0, xs)                             # (n, B, H, C, dv)
    return out.movedim(0, 2).flatten(2, 3), last                      # (B, H, T, dv), (B, H, dk, dv)


def unit_lower_inverse(L: Tensor) -> Tensor:
    """(I + L)^{-1} for strictly lower-triangular L: (..., C, C).

    Eager: one batched triangular solve (LAPACK; ~4x faster training steps than the loop). Under
    torch.export (ONNX has no triangular solve): `blocked_unit_lower_inverse`.
    LAPACK has no bf16/fp16 solve: half precision (autocast) solves in fp32 and casts back.
    """
    C = L.shape[-1]
    if torch.compiler.is_exporting():
        return blocked_unit_lower_inverse(L)
    eye = torch.eye(C, dtype=L.dtype, device=L.device)
    work = torch.float32 if L.dtype in (torch.bfloat16, torch.float16) else L.dtype
    inv = torch.linalg.solve_triangular((L + eye).to(work), eye.expand_as(L).to(work), upper=False,
                                        unitriangular=True)                           # (..., C, C)
    return inv.to(L.dtype)


def blocked_unit_lower_inverse(L: Tensor) -> Tensor:
    """(I + L)^{-1} for strictly lower-triangular L (..., C, C) in plain ops, by halves (as LAPACK's
    trtri): inv [[I + A, 0], [B, I + D]] = [[A', 0], [-D' B A', D']] with A', D' the halves' inverses,
    both found by one recursion on the two stacked halves.

    log2(C) levels of a few batched products over (..., C, C) in all, where forward substitution
    makes C passes over the whole (..., C, C) tensor: at T=8192 that tensor outgrows the cache and
    those passes cost ONNX Runtime more per chunk than at T=1024. C is padded to a power of two
    (zero rows of L: the identity there).
    """
    C = L.shape[-1]
    P = 1 << (C - 1).bit_length()                                     # next power of two >= C
    if P != C:
        L = F.pad(L, (0, P - C, 0, P - C))                            # (..., P, P)
    return _halves_inverse(L)[..., :C, :C]                            # (..., C, C)


def _halves_inverse(L: Tensor) -> Tensor:
    n = L.shape[-1]
    if n == 1:
        return torch.ones_like(L)                                     # (..., 1, 1)
    h = n // 2
    both = _halves_inverse(torch.stack([L[..., :h, :h], L[..., h:, h:]]))  # (2, ..., h, h)
    A, D = both[0], both[1]                                           # (..., h, h)
    low = -(D @ L[..., h:, :h] @ A)                                   # (..., h, h)
    top = torch.cat([A, torch.zeros_like(A)], -1)                     # (..., h, n)
    return torch.cat([top, torch.cat([low, D], -1)], -2)              # (..., n, n)


def delta_rule(q: Tensor, k: Tensor, v: Tensor, beta: Tensor, g: Tensor | None, chunk: int,
               S0: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """q, k: (B, H, T, dk), v: (B, H, T, dv), beta: (B, H, T, 1), g: (B, H, T, 1) or None (no decay)
    -> (out (B, H, T, dv), final state (B, H, dk, dv)); T % chunk == 0. S0: as in decayed_linear.

    Batched over all chunks: the pair products and T = (I + L)^-1. Per chunk, in the scan step:
    the pseudo-values U~ = T (b V - b K S) and the chunk's output q S + (q k^T) U~, so no tensor that
    grows with T besides the inputs and the output is made (no W = T b K, no stacked states: at
    T=8192 those were ~100 MB of fresh pages per call, a page-fault cost growing faster than T).
    """
    qc, kc, vc, bc = (chunks(t, chunk) for t in (q, k, v, beta))     # (B, H, n, C, .)
    kb, vb = kc * bc, vc * bc                                         # (B, H, n, C, dk), (B, H, n, C, dv)
    if g is None:
        C = chunk
        strict = torch.ones(C, C, dtype=torch.bool, device=q.device).tril(-1)
        L = (kb @ kc.transpose(-2, -1)).masked_fill(~strict, 0.0)     # (B, H, n, C, C)
        qk = (qc @ kc.transpose(-2, -1)).masked_fill(strict.T, 0.0)   # (B, H, n, C, C) j <= i
        kd, qd, carry = kc, qc, ()
    else:
        from_start, to_end, whole, pairs = chunk_decays(chunks(g, chunk))  # see chunk_decays
        L = (kb @ kc.transpose(-2, -1)) * pairs[..., 0].tril(-1)      # (B, H, n, C, C) j < i
        qk = (qc @ kc.transpose(-2, -1)) * pairs[..., 0]              # (B, H, n, C, C) j <= i
        kb = kb * from_start                                          # decay from the chunk start
        kd, qd = kc * to_end, qc * from_start                         # (B, H, n, C, dk)
        carry = (whole,)                                              # (B, H, n, 1, 1)
    T_inv = unit_lower_inverse(L)                                     # (B, H, n, C, C)

    def step(S: Tensor, t_inv: Tensor, kb_n: Tensor, vb_n: Tensor, qk_n: Tensor, qd_n: Tensor,
             kd_n: Tensor, *d: Tensor) -> tuple[Tensor, Tensor]:
        new_u = t_inv @ (vb_n - kb_n @ S)                             # (B, H, C, dv) pseudo-values
        out = qd_n @ S + qk_n @ new_u                                 # (B, H, C, dv)
        S_next = (d[0] * S if d else S) + kd_n.transpose(-2, -1) @ new_u  # (B, H, dk, dv)
        return S_next, out

    S0 = initial_state(q, v, S0)                                      # (B, H, dk, dv)
    xs = tuple(t.movedim(2, 0) for t in (T_inv, kb, vb, qk, qd, kd, *carry))  # (n, B, H, ., .) views
    last, out = scan_chunks(step, S0, xs)                             # (n, B, H, C, dv)
    return out.movedim(0, 2).flatten(2, 3), last                      # (B, H, T, dv), (B, H, dk, dv)


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
