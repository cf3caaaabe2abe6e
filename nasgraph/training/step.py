"""One weight step of the training loop on the run's device, precision and ranks.

A batch from the stream is the global batch (train.batch_size); under torchrun each rank keeps its
shard (`nasgraph.distributed.shard`) and DistributedDataParallel averages the gradients, so every rank
takes the step a single process takes on the whole batch. The forward runs under autocast for bf16
and fp16; fp16 scales the loss (GradScaler) and unscales before clipping.
"""
from __future__ import annotations

import torch

from nasgraph import distributed
from nasgraph.training.device import autocast, grad_scaler, to_device
from nasgraph.training.losses import IGNORE, task_loss


def labelled(labels: torch.Tensor) -> int:
    """Targets that carry loss (labels not IGNORE)."""
    return int((labels != IGNORE).sum())


def rank_batch(batch: tuple[torch.Tensor, torch.Tensor], device: torch.device
               ) -> tuple[tuple[torch.Tensor, torch.Tensor], float]:
    """This rank's shard of a global batch on `device`, and its loss weight (1.0 in a single process)."""
    part, weight = distributed.shard(batch, labelled)
    return to_device(part, device), weight


def weighted(loss: torch.Tensor, logits: torch.Tensor, weight: float) -> torch.Tensor:
    """What this rank back-propagates: its mean loss times its weight; a rank without targets sends
    zero gradients through the whole graph (DDP expects every rank's backward)."""
    return loss * weight if weight else logits.sum() * 0.0


class WeightStep:
    """`loss(batch)` on this rank's shard, then `step(...)`: one optimizer step of the weights."""

    def __init__(self, model: torch.nn.Module, opt: torch.optim.Optimizer, train, device: torch.device,
                 strategy=None):
        alphas = {id(p) for p in getattr(model, "arch_parameters", list)()}      # averaged by the arch step
        ignore = tuple(n for n, p in model.named_parameters() if id(p) in alphas)
        self.net = distributed.wrap(model, device, ignore=ignore,               # the model itself in one process
                                    find_unused=getattr(strategy, "skips_candidates", False))
        self.opt, self.device, self.precision, self.clip = opt, device, train.precision, train.grad_clip
        self.scaler = grad_scaler(device, train.precision)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.precision):
            return self.net(tokens).float()                              # (B, C) or (B, T, V)

    def loss(self, batch) -> tuple[torch.Tensor, torch.Tensor, float, float, float]:
        """(this rank's loss, its logits, its weight, the global batch's mean loss, its accuracy)."""
        (tokens, labels), weight = rank_batch(batch, self.device)
        logits = self.forward(tokens)
        loss = task_loss(logits, labels)                  # mean over labelled targets; NaN without any
        keep = labels != IGNORE
        n = int(keep.sum()) if weight else 0
        correct = int((logits.argmax(-1) == labels)[keep].sum()) if n else 0
        if distributed.active():                          # the whole batch's figures, equal on every rank
            loss_sum, correct, n = distributed.all_reduce_sum([loss.item() * n if n else 0.0, correct, n],
                                                              self.device)
            mean = loss_sum / n if n else float("nan")
        else:
            mean = loss.item()
        return loss, logits, weight, mean, correct / n if n else float("nan")

    def step(self, loss: torch.Tensor, logits: torch.Tensor, weight: float) -> None:
        self.opt.zero_grad(set_to_none=True)
        out = weighted(loss, logits, weight)
        if self.scaler is not None:
            self.scaler.scale(out).backward()
            self.scaler.unscale_(self.opt)
        else:
            out.backward()
        if self.clip:
            torch.nn.utils.clip_grad_norm_(self.opt.param_groups[0]["params"], self.clip)
        if self.scaler is not None:
            self.scaler.step(self.opt)        # skipped when the scaled gradients overflowed
            self.scaler.update()
        else:
            self.opt.step()

    def state_dict(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler is not None else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
