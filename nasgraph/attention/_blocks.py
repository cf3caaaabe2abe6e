"""Blocking helpers for the sparse-pattern and windowed types.

Every helper uses tensor ops only (no Python branch on the sequence length), so a module built from
them exports with a dynamic sequence axis. Layout: softmax-pattern types work head-major,
(H, B, T, dh), so that blocks of all batch rows form one SDPA batch without extra copies; a blocked
tensor is (..., nb, w, d) with nb = ceil(T / w) blocks of w positions, positions past T being padding
added here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nasgraph.attention.base import NEG_INF


def head_major(t: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(B, T, H*dh) -> (H, B, T, dh), a view."""
    return t.unflatten(-1, (n_heads, -1)).permute(2, 0, 1, 3)


def to_blocks(t: torch.Tensor, block: int) -> torch.Tensor:
    """(..., T, d) -> (..., nb, block, d), padding T with zeros (False) up to nb * block."""
    T = t.shape[-2]
    nb = (T + block - 1) // block        # written so that the exporter sees nb * w as a multiple of w
    padded = F.pad(t, [0, 0, 0, nb * block - T])                     # (..., nb * w, d)
    return padded.unflatten(-2, (nb, block))                         # (..., nb, w, d)


def from_blocks(t: torch.Tensor, T: int) -> torch.Tensor:
    """(..., nb, w, d) -> (..., T, d): merge the blocks and drop the padded tail."""
    return t.flatten(-3, -2)[..., :T, :]                             # (..., T, d)


def real_tokens(mask: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """(B, T) bool, True for real tokens (all of them when mask is None)."""
    return torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if mask is None else mask


def block_flags(real: torch.Tensor, block: int) -> torch.Tensor:
    """(B, T) bool -> (B, nb, w) bool; our padding past T is False."""
    return to_blocks(real[..., None], block)[..., 0]


def neighbour_blocks(t: torch.Tensor, before: int, after: int) -> torch.Tensor:
    """Concatenate each block with its neighbours: (..., nb, w, d) -> (..., nb, (before+1+after) * w, d).

    Block i gets blocks i - before .. i + after in order; blocks outside 0..nb-1 are zeros (False for
    bool tensors), so gathering the key flags the same way masks them.
    """
    nb = t.shape[-3]
    padded = F.pad(t, [0, 0, 0, 0, before, after])                   # (..., nb + before + after, w, d)
    shifted = [padded[..., i:i + nb, :, :] for i in range(before + 1 + after)]
    return torch.cat(shifted, dim=-2)                                # (..., nb, (before+1+after) * w, d)


def pair_blocks(t: torch.Tensor) -> torch.Tensor:
    """Each block after the first with the block before it: (..., nb + 1, w, d) -> (..., nb, 2w, d)."""
    return torch.cat([t[..., :-1, :, :], t[..., 1:, :, :]], dim=-2)  # (..., nb, 2w, d)


def block_positions(nb: int, block: int, device: torch.device) -> torch.Tensor:
    """Absolute position of each slot of each block, (nb, w)."""
    return torch.arange(nb, device=device)[:, None] * block + torch.arange(block, device=device)


def relative_lag(block: int, before: int, after: int, device: torch.device) -> torch.Tensor:
    """Query position minus key position for a block against its neighbour blocks, (w, L).

    The same for every block, so window patterns are one small (w, L) mask.
    """
    query = torch.arange(block, device=device)[:, None]                      # (w, 1)
    key = torch.arange(-before * block, (after + 1) * block, device=device)   # (L,)
    return query - key                                                        # (w, L)


def block_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax attention of each query block over its own key set, batched in one SDPA call.

    q: (H, B, nb, w, dh); k, v: (H, B, nb, L, dh); allowed: (B, nb, w or 1, L) bool
    -> (H, B, nb, w, dh). Disallowed keys get a finite NEG_INF bias (a fully masked row stays finite).
    """
    B, nb = q.shape[1], q.shape[2]
    zero, neg = q.new_zeros(()), q.new_full((), NEG_INF)
    bias = torch.where(allowed, zero, neg).flatten(0, 1)[None]       # (1, B*nb, w or 1, L)
    out = F.scaled_dot_product_attention(q.flatten(1, 2), k.flatten(1, 2), v.flatten(1, 2),
                                         attn_mask=bias)             # (H, B*nb, w, dh)
    return out.unflatten(1, (B, nb))                                 # (H, B, nb, w, dh)


def merge_heads(out: torch.Tensor, T: int) -> torch.Tensor:
    """(H, B, nb, w, dh) -> (B, T, H, dh)."""
    return from_blocks(out, T).permute(1, 2, 0, 3)                   # (B, T, H, dh)


def global_keys(k: torch.Tensor, v: torch.Tensor, real: torch.Tensor, n: int, block: int,
                causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The first n positions as extra keys of every query block (global tokens).

    k, v: (H, B, T, dh); real: (B, T) bool -> keys, values (H, B, nb, n, dh) and allowed
    (B, nb, w or 1, n); fewer than n keys when T < n.
    """
    T = k.shape[2]
    nb = (T + block - 1) // block
    kg, vg = (t[:, :, None, :n].expand(-1, -1, nb, -1, -1) for t in (k, v))  # (H, B, nb, n, dh)
    allowed = real[:, None, None, :n].expand(-1, nb, -1, -1)         # (B, nb, 1, n)
    if causal:
        qpos = block_positions(nb, block, k.device)[:, :, None]      # (nb, w, 1)
        allowed = allowed & (torch.arange(T, device=k.device)[:n] <= qpos)  # (B, nb, w, n)
    return kg, vg, allowed


def global_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, n: int,
                causal: bool) -> torch.Tensor:
    """Full softmax attention for the first n queries (global tokens): (H, B, n, dh).

    q, k, v: (H, B, T, dh); mask: (B, T) bool or None. O(n T d).
    """
    T = k.shape[2]
    bias = None if mask is None else (~mask)[:, None, :].to(q.dtype) * NEG_INF  # (B, 1, T)
    if causal:
        pos = torch.arange(T, device=q.device)                       # (T,)
        future = (pos[None, :] > pos[:n, None]).to(q.dtype) * NEG_INF  # (n, T)
        bias = future if bias is None else bias + future            # (B, n, T)
    return F.scaled_dot_product_attention(q[:, :, :n], k, v, attn_mask=bias)  # (H, B, n, dh)


# -- AFT (attention-free) pieces shared by aft_full, aft_local, aft_simple, aft_conv -----------------
TINY = 1e-30  # floor of AFT denominators: exact wherever the sum is not ~0 (a row with no real key -> 0)


def aft_keys(k: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """exp(K) with padded positions zeroed: (B, T, C) -> (B, T, C).

    K is shifted by its per-channel max over the real positions (exact: the shift cancels in the
    ratio of AFT's numerator and denominator, so it carries no gradient), so exp never overflows.
    """
    if mask is not None:
        k = k.masked_fill(~mask[..., None], NEG_INF)                 # padded keys never set the max
    ek = torch.exp(k - k.detach().amax(1, keepdim=True))             # (B, T, C)
    if mask is not None:
        ek = ek * mask[..., None].to(ek.dtype)                       # padded -> 0, even in an all-padded row
    return ek


def aft_output(q: torch.Tensor, num: torch.Tensor, den: torch.Tensor, n_heads: int) -> torch.Tensor:
    """sigmoid(Q) * numerator / denominator: (B, T, C) each (num, den may broadcast) -> (B, T, H, dh)."""
    return (torch.sigmoid(q) * (num / den.clamp_min(TINY))).unflatten(-1, (n_heads, -1))
