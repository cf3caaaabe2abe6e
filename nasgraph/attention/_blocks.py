"""Blocking helpers for the sparse-pattern and windowed types.

Every helper uses tensor ops only (no Python branch on the sequence length), so a module built from
them exports with a dynamic sequence axis. Layout convention: a blocked tensor is (..., nb, w, d)
with nb = ceil(T / w) blocks of w positions; positions past T are padding added here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nasgraph.attention.base import NEG_INF


def pad_to_blocks(t: torch.Tensor, block: int, dim: int = -2, value: float = 0.0) -> torch.Tensor:
    """Pad axis `dim` of t up to a multiple of `block` (at the end)."""
    T = t.shape[dim]
    extra = (block - T % block) % block
    dim = dim % t.dim()
    spec = [0, 0] * (t.dim() - 1 - dim) + [0, extra]                 # F.pad lists the last axis first
    return F.pad(t, spec, value=value)


def to_blocks(t: torch.Tensor, block: int) -> torch.Tensor:
    """(..., T, d) -> (..., nb, block, d), padding T with zeros up to nb * block."""
    t = pad_to_blocks(t, block, dim=-2)                              # (..., nb * w, d)
    return t.unflatten(-2, (-1, block))                              # (..., nb, w, d)


def from_blocks(t: torch.Tensor, T: int) -> torch.Tensor:
    """(..., nb, w, d) -> (..., T, d): merge the blocks and drop the padded tail."""
    return t.flatten(-3, -2)[..., :T, :]                             # (..., T, d)


def valid_keys(mask: torch.Tensor | None, x: torch.Tensor, block: int) -> torch.Tensor:
    """Key validity in blocks, (B, nb, w) bool: real tokens True, padding (user's or ours) False."""
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)  # (B, T)
    return to_blocks(mask[..., None], block)[..., 0]                 # (B, nb, w)


def neighbour_blocks(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Concatenate each block with its neighbours: (..., nb, w, d) -> (..., nb, (before+1+after) * w, d).

    Block i gets blocks i - before .. i + after in order; blocks outside 0..nb-1 are zeros (False for
    bool tensors), so callers must mask them (see `neighbour_positions`).
    """
    nb = t.shape[-3]
    padded = F.pad(t, [0, 0, 0, 0, before, after])                   # (..., nb + before + after, w, d)
    shifted = [padded[..., i:i + nb, :, :] for i in range(before + 1 + after)]
    return torch.cat(shifted, dim=-2)                                # (..., nb, (before+1+after) * w, d)


def block_positions(nb: int, block: int, device: torch.device) -> torch.Tensor:
    """Absolute position of each slot of each block, (nb, w)."""
    return torch.arange(nb, device=device)[:, None] * block + torch.arange(block, device=device)


def neighbour_positions(nb: int, block: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Absolute key positions matching `neighbour_blocks`, (nb, (before+1+after) * w).

    Slots from blocks outside the sequence get positions < 0 or >= nb * w; mask them with
    `(pos >= 0) & (pos < nb * w)` or through the neighbour-gathered validity.
    """
    offsets = torch.arange(-before * block, (after + 1) * block, device=device)   # (n * w,)
    return torch.arange(nb, device=device)[:, None] * block + offsets               # (nb, n * w)


def block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
                    n_heads: int) -> torch.Tensor:
    """Softmax attention of each query block over its own key set, batched with torch's SDPA.

    q: (B, nb, w, H*dh); k, v: (B, nb, L, H*dh); allowed: (B, nb, w or 1, L) bool -> (B, nb, w, H, dh).
    Disallowed keys get a finite NEG_INF bias, so a fully masked row stays finite.
    """
    B = q.shape[0]

    def split(t: torch.Tensor) -> torch.Tensor:                      # (B, nb, L, H*dh) -> (B*nb, H, L, dh)
        return t.unflatten(-1, (n_heads, -1)).transpose(2, 3).flatten(0, 1)

    bias = (~allowed).flatten(0, 1)[:, None].to(q.dtype) * NEG_INF   # (B*nb, 1, w or 1, L)
    out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=bias)  # (B*nb, H, w, dh)
    return out.unflatten(0, (B, -1)).transpose(2, 3)                 # (B, nb, w, H, dh)


def global_keys(k: torch.Tensor, v: torch.Tensor, real: torch.Tensor, n: int, qpos: torch.Tensor,
                causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first n positions as extra keys of every query block (global tokens).

    k, v: (B, T, C); real: (B, T) bool; qpos: (nb, w, 1) query positions -> keys, values
    (B, nb, n, C) and allowed (B, nb, w, n); fewer than n keys when T < n.
    """
    B, nb = k.shape[0], qpos.shape[0]
    kg, vg = (t[:, None, :n].expand(B, nb, -1, -1) for t in (k, v))  # (B, nb, n, C)
    gpos = torch.arange(k.shape[1], device=k.device)[:n]             # (n,)
    visible = (gpos <= qpos) if causal else (gpos >= 0) & (qpos >= 0)  # (nb, w, n)
    allowed = real[:, None, None, :n] & visible                     # (B, nb, w, n)
    return kg, vg, allowed


def global_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, n: int,
                causal: bool, n_heads: int) -> torch.Tensor:
    """Full softmax attention for the first n queries (global tokens): (B, n, H, dh).

    q, k, v: (B, T, H*dh); mask: (B, T) bool or None. O(n T d).
    """
    T = k.shape[1]
    qg, k, v = (t.unflatten(-1, (n_heads, -1)).transpose(1, 2) for t in (q[:, :n], k, v))  # (B, H, n|T, dh)
    bias = None if mask is None else (~mask)[:, None, None, :].to(q.dtype) * NEG_INF  # (B, 1, 1, T)
    if causal:
        pos = torch.arange(T, device=q.device)                       # (T,)
        future = (pos[None, :] > pos[:n, None]).to(q.dtype) * NEG_INF  # (n, T)
        bias = future if bias is None else bias + future
    return F.scaled_dot_product_attention(qg, k, v, attn_mask=bias).transpose(1, 2)  # (B, n, H, dh)


# -- AFT (attention-free) pieces shared by aft_full, aft_local, aft_simple, aft_conv -----------------
TINY = 1e-30  # floor of AFT denominators: exact wherever the sum is not ~0 (a row with no real key -> 0)


def aft_terms(k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """[exp(K) * V, exp(K)] with padded positions zeroed: (B, T, C) x 2 -> (B, T, 2C).

    K is shifted by its per-channel max over the real positions (exact: the shift cancels in the
    ratio of AFT's numerator and denominator), so exp never overflows.
    """
    if mask is not None:
        k = k.masked_fill(~mask[..., None], NEG_INF)                 # padded keys never set the max
    ek = torch.exp(k - k.amax(1, keepdim=True))                      # (B, T, C)
    if mask is not None:
        ek = ek * mask[..., None].to(ek.dtype)                       # padded -> 0, even in an all-padded row
    return torch.cat([ek * v, ek], -1)                               # (B, T, 2C)


def aft_output(q: torch.Tensor, sums: torch.Tensor, n_heads: int) -> torch.Tensor:
    """sigmoid(Q) * numerator / denominator: q (B, T, C), sums (B, T, 2C) -> (B, T, H, dh)."""
    num, den = sums.chunk(2, dim=-1)                                 # (B, T, C) each
    return (torch.sigmoid(q) * num / den.clamp_min(TINY)).unflatten(-1, (n_heads, -1))
