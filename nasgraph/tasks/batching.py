"""Batches of (token ids, labels) tensors, bucketed by length so little compute goes to padding."""
from __future__ import annotations

import random
from typing import Iterator

import torch

from nasgraph.tasks.base import IGNORE, PAD_ID, Split

POOL_BATCHES = 50   # shuffled training: sort within pools of this many batches, then shuffle the batches


def batch_order(lengths: list[int], batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
                sort_by_length: bool = True) -> list[list[int]]:
    """Example indices per batch.

    shuffle=False: sorted by length (stable) when sort_by_length, else the split's order.
    shuffle=True: a permutation seeded by (seed, epoch); with sort_by_length, each pool of
    POOL_BATCHES batches is sorted by length before cutting, and the batches are shuffled.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = list(range(len(lengths)))
    rng = random.Random(f"{seed}/{epoch}")
    if shuffle:
        rng.shuffle(order)
    if sort_by_length:
        pool = batch_size * POOL_BATCHES if shuffle else max(len(order), 1)
        order = [i for start in range(0, len(order), pool)
                 for i in sorted(order[start:start + pool], key=lengths.__getitem__)]
    groups = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and sort_by_length:
        rng.shuffle(groups)
    return groups


def collate(ids: list[list[int]], labels: list) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest sequence: tokens (B, T) int64 with PAD_ID; labels (B,) int64, or (B, T) for
    per-position labels (lists), padded with IGNORE."""
    longest = max(len(seq) for seq in ids)
    padded = [list(seq) + [PAD_ID] * (longest - len(seq)) for seq in ids]
    if labels and isinstance(labels[0], list):
        labels = [row + [IGNORE] * (longest - len(row)) for row in labels]             # (B, T)
    return torch.tensor(padded, dtype=torch.long), torch.tensor(labels, dtype=torch.long)  # (B, T), (B,) | (B, T)


def batches(split: Split, batch_size: int, *, shuffle: bool, seed: int = 0, epoch: int = 0,
            sort_by_length: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (tokens (B, T) padded with PAD_ID to the batch's longest, labels (B,) or (B, T)); the last
    batch may be short.

    Deterministic for (seed, epoch). Example:
        >>> for tokens, labels in batches(data.splits["train"], 32, shuffle=True, seed=0, epoch=e): ...
    """
    lengths = [len(seq) for seq in split.ids]
    for group in batch_order(lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                             sort_by_length=sort_by_length):
        yield collate([split.ids[i] for i in group], [split.labels[i] for i in group])
