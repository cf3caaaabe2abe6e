"""The task loss shared by training, search and evaluation.

Logits are (..., C) and labels (...): one label per sequence (classification, (B, C) vs (B,)) or one
per position (language modelling, (B, T, V) vs (B, T)). Labels equal to IGNORE (padding, positions
without a target) carry no loss and no accuracy.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def task_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the labelled positions."""
    return F.cross_entropy(logits.flatten(0, -2), labels.flatten(), ignore_index=IGNORE)


def loss_and_correct(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int, int]:
    """(summed cross-entropy, correct argmax count, labelled count) of one batch, for evaluation."""
    flat_logits, flat_labels = logits.flatten(0, -2), labels.flatten()          # (N, C), (N,)
    keep = flat_labels != IGNORE
    loss = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="sum").item()
    correct = int((flat_logits.argmax(-1)[keep] == flat_labels[keep]).sum())
    return loss, correct, int(keep.sum())
