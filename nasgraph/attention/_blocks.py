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
