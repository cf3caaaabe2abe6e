"""Resumable batch streams over a split: the position is (epoch, index), batches are deterministic."""
from __future__ import annotations

import torch

from nasgraph.errors import NasgraphError
from nasgraph.tasks.base import Split
from nasgraph.training.device import module_device, to_device
from nasgraph.training.losses import loss_and_correct


class BatchStream:
    """Endless length-bucketed batches of one split; `state()`/`load_state()` resume mid-epoch."""

    def __init__(self, split: Split, batch_size: int, seed: int, name: str = "train"):
        if len(split) == 0:
            raise NasgraphError(f"the {name} split is empty: nothing to train on")
        self.split, self.batch_size, self.seed, self.name = split, batch_size, seed, name
        self.epoch, self.index, self._epoch_batches = 0, 0, None

    def _batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        from nasgraph.tasks.batching import batches

        if self._epoch_batches is None:
            self._epoch_batches = list(batches(self.split, self.batch_size, shuffle=True, seed=self.seed,
                                               epoch=self.epoch))
        return self._epoch_batches

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens (B, T) int64, labels (B,) int64)."""
        epoch = self._batches()
        if self.index >= len(epoch):
            self.epoch, self.index, self._epoch_batches = self.epoch + 1, 0, None
            epoch = self._batches()
        batch = epoch[self.index]
        self.index += 1
        return batch

    @property
    def epoch_progress(self) -> float:
        """Epochs done, fractional."""
        return self.epoch + self.index / max(1, len(self._batches()))

    def state(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state(self, state: dict) -> None:
        self.epoch, self.index, self._epoch_batches = state["epoch"], state["index"], None


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, batch_size: int, max_batches: int | None = None,
             task=None) -> dict:
    """Mean cross-entropy and accuracy (per labelled example or position) of `model` on `split`, plus
    the task's own metrics when `task` (a nasgraph.tasks.Task) is given (eval mode, restored afterwards;
    on the model's device, in fp32)."""
    from nasgraph.tasks.batching import batches

    was_training = model.training
    device = module_device(model)
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for i, (tokens, labels) in enumerate(batches(split, batch_size, shuffle=False, seed=0, epoch=0)):
        if max_batches is not None and i >= max_batches:
            break
        tokens, labels = to_device((tokens, labels), device)
        batch_loss, batch_correct, batch_n = loss_and_correct(model(tokens), labels)   # logits (B, C) or (B, T, V)
        loss_sum, correct, n = loss_sum + batch_loss, correct + batch_correct, n + batch_n
    model.train(was_training)
    if n == 0:
        raise NasgraphError("evaluation split is empty")
    if task is not None:
        return task.metrics_from(loss_sum, correct, n, split)
    return {"loss": loss_sum / n, "acc": correct / n, "n": n}
