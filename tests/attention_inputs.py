"""Inputs shared by the registry-wide attention tests."""
from __future__ import annotations

import torch


def padding_mask(T: int, B: int = 2) -> torch.Tensor:
    """Row 0 right-padded, row 1 left-padded with a hole in the middle; (B, T) bool, True = real."""
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, T - T // 3:] = False
    mask[1, : T // 4] = False
    mask[1, T // 2] = False
    return mask
