"""Run a causal layer over a long sequence block by block, its state carried from block to block.

A linear-complexity layer streams every per-position tensor (projections, chunks, outputs) once. At
T=8192 and d_model 256 one (T, d) float tensor is 8 MB, four times a core's 2 MB L2 cache, so every
op that streams whole tensors (projections, transposes, concatenations, the chunk stacks) costs more
per token than at T=1024, where it fits: ONNX Runtime's layout ops grew 11-18x for 8x T. Cut into
blocks of `block` positions, with the recurrent state (or a sliding window's last keys) carried,
every tensor of a block has the same size at any T, so the time per token stays that of a short
sequence.

    form(x_b (B, Tb, d), keep_b (B, Tb) float or None, state) -> (y_b (B, Tb, ...), state after x_b)

Eager: a Python loop over blocks when T > block (one call of `form` otherwise: the training path
of short sequences is unchanged). Under torch.export: always one Scan over blocks whose body holds
the whole form (its own Scan over chunks nested inside), with a dynamic batch and length; the blocks
are gathered from x, and the outputs back into position order, by one Gather each (pad + transpose
and transpose + slice were two passes each over a whole-sequence tensor, out of cache at T=8192). The
block count n and the block size Tb are both computed from T: n = ceil(T / block) blocks of Tb =
ceil(T / n) positions rounded up to `align`, so a short sequence is one block with no padding beyond
`align` (keep_b is 0.0 at that padding, which holds zeros in eager mode and repeats x's last position
when exported: `form` must make it neutral for the state whatever its values).
"""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.stateless import _reparametrize_module
from torch.utils._pytree import tree_map

from nasgraph.attention._recurrent import scan_chunks

Form = Callable[[Tensor, "Tensor | None", Any], tuple[Tensor, Any]]


def runs_by_blocks(T, block: int) -> bool:
    """Whether `by_blocks` cuts a sequence of T positions (always under torch.export; block 0: never)."""
    return bool(block) and (torch.compiler.is_exporting() or T > block)


def block_layout(T, block: int, align: int) -> tuple[Any, Any]:
    """(n blocks, Tb positions each): n = ceil(T / block), Tb = ceil(T / n) rounded up to align.

    Written without branches, so T may be symbolic (torch.export)."""
    units = (T + align - 1) // align                                  # aligned units in T
    per = (block + align - 1) // align                                # units in a full block
    n = (units + per - 1) // per
    return n, (units + n - 1) // n * align


def dense(t: Tensor) -> Tensor:
    """t with row-major strides, also along size-1 axes (which `contiguous` leaves as they are)."""
    return t.clone(memory_format=torch.contiguous_format) if torch.compiler.is_exporting() else t


def by_blocks(module: nn.Module, form: Form, x: Tensor, keep: Tensor | None, init: Any, block: int,
              align: int) -> tuple[Tensor, Any]:
    """y (B, T, ...) and the last state of `form` run over x (B, T, d) by blocks (see the module doc).

    keep: (B, T) float, 1.0 at real positions (None: all real); init: the state before x when cut
    into blocks (a tensor or a tuple of tensors); one call form(x, keep, None) when not cut (None:
    the form's own start); align: Tb is a multiple of it (the form's chunk).
    """
    B, T, d = x.shape
    if not runs_by_blocks(T, block):
        return form(x, keep, None)
    n, Tb = block_layout(T, block, align)
    if not torch.compiler.is_exporting():
        return _eager_blocks(form, x, keep, init, n, Tb)
    pad = n * Tb - T
    real = torch.ones(B, T, dtype=x.dtype, device=x.device) if keep is None else keep  # (B, T)
    ks = F.pad(real, (0, pad)).reshape(B, n, Tb).movedim(1, 0)        # (n, B, Tb) 0.0 at the padding
    rows = _block_rows(B, T, n, Tb, x.device).flatten()              # (n*B*Tb,)
    xs = x.flatten(0, 1).index_select(0, rows).unflatten(0, (n, B, Tb))  # (n, B, Tb, d)

    def step(carry: Any, x_b: Tensor, keep_b: Tensor) -> tuple[Any, Tensor]:
        y_b, carry = form(x_b, keep_b, carry)
        return tree_map(dense, carry), y_b                             # a scan's carry keeps its layout

    # the body must not read parameters that require grad: scan's autograd wrapper then saves
    # symbolic sizes that the ONNX decomposition rejects (the batch axis came out static)
    detached = {name: p.detach() for name, p in module.named_parameters()}
    with _reparametrize_module(module, detached):
        last, ys = scan_chunks(step, tree_map(dense, init), (xs, ks.contiguous()))  # (n, B, Tb, ...)
    rows = _position_rows(B, T, Tb, x.device).flatten()               # (B*T,)
    return ys.flatten(0, 2).index_select(0, rows).unflatten(0, (B, T)), last  # (B, T, ...)


def _block_rows(B, T, n, Tb, device: torch.device) -> Tensor:
    """(n, B, Tb) rows of x.flatten(0, 1) (B*T rows) that make block i of sequence b: position i*Tb + j,
    the padding after position T - 1 repeating it (its keep is 0.0). One gather instead of pad +
    transpose: each is a pass over all of x, at T=8192 out of the core's cache."""
    t = torch.arange(n * Tb, device=device).clamp_max(T - 1).reshape(n, 1, Tb)  # (n, 1, Tb) positions
    return torch.arange(B, device=device).reshape(1, B, 1) * T + t    # (n, B, Tb)


def _position_rows(B, T, Tb, device: torch.device) -> Tensor:
    """(B, T) rows of the blocks' outputs (n, B, Tb, ...).flatten(0, 2) that hold position t of
    sequence b: (t // Tb, b, t % Tb). One gather instead of transpose + slice."""
    t = torch.arange(T, device=device).reshape(1, T)                  # (1, T)
    i = t // Tb                                                       # (1, T) block (no %: Tb may be symbolic)
    return (i * B + torch.arange(B, device=device).reshape(B, 1)) * Tb + (t - i * Tb)  # (B, T)


def _eager_blocks(form: Form, x: Tensor, keep: Tensor | None, state: Any, n: int, Tb: int
                  ) -> tuple[Tensor, Any]:
    """by_blocks in eager mode: views of x per block (only the last one padded, with keep 0.0 there;
    a block with no padding and no mask gets keep None) and one concatenation of the outputs."""
    T, ys = x.shape[1], []
    for i in range(n):
        x_b = x[:, i * Tb:(i + 1) * Tb]                                # (B, <= Tb, d) a view
        keep_b = None if keep is None else keep[:, i * Tb:(i + 1) * Tb]  # (B, <= Tb)
        real = x_b.shape[1]
        if real < Tb:                                                  # the last block: padded
            keep_b = x_b.new_ones(x_b.shape[:2]) if keep_b is None else keep_b
            x_b, keep_b = F.pad(x_b, (0, 0, 0, Tb - real)), F.pad(keep_b, (0, Tb - real))
        y_b, state = form(x_b, keep_b, state)
        ys.append(y_b[:, :real])
    return torch.cat(ys, 1), state                                    # (B, T, ...)
