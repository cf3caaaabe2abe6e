"""Sandwich-rule training of an elastic supernet (BigNAS, Once-for-All, HAT): every step trains the
largest sub-network on the labels, then the smallest and `n_random` random ones on the largest's
predictions (in-place distillation), gradients summed into one optimizer step of the shared weights.
Each sub-network gets a random attention candidate per layer where a layer has a choice.
"""
from __future__ import annotations

import math
import random
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from nasgraph.errors import NasgraphError
from nasgraph.graph.subnet import SubNet, largest, random_attention, sample, smallest
from nasgraph.training.data import BatchStream
from nasgraph.training.loop import lr_lambda
from nasgraph.training.losses import IGNORE, task_loss


def distill_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) over the labelled examples or positions: (..., C) logits, (...) labels."""
    keep = labels.flatten() != IGNORE                                             # (N,)
    s, t = student.flatten(0, -2)[keep], teacher.flatten(0, -2)[keep]            # (n, C)
    return F.kl_div(s.log_softmax(-1), t.log_softmax(-1), log_target=True, reduction="batchmean")


def sandwich(space: dict, rng: random.Random, n_random: int) -> list[SubNet]:
    """This step's sub-networks: largest first (the teacher), smallest, then `n_random` random."""
    return [largest(space, random_attention(space, rng)), smallest(space, random_attention(space, rng)),
            *(sample(space, rng) for _ in range(n_random))]


def sandwich_step(elastic, opt, tokens: torch.Tensor, labels: torch.Tensor, subs: list[SubNet],
                  grad_clip: float | None) -> dict:
    """One optimizer step over `subs` (the first one the teacher). Returns the losses."""
    opt.zero_grad(set_to_none=True)
    logits = elastic(subs[0], tokens)                                             # (B, C) or (B, T, V)
    loss = task_loss(logits, labels)
    loss.backward()
    teacher = logits.detach()
    kd = []
    for sub in subs[1:]:
        student = distill_loss(elastic(sub, tokens), teacher, labels)
        student.backward()
        kd.append(student.item())
    if not all(map(math.isfinite, [loss.item(), *kd])):
        raise NasgraphError(f"sandwich training diverged (loss {loss.item()}, distillation {kd}): lower train.lr")
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(opt.param_groups[0]["params"], grad_clip)
    opt.step()
    acc = (teacher.argmax(-1) == labels)[labels != IGNORE].float().mean().item()
    return {"loss": loss.item(), "kd": float(np.mean(kd)) if kd else 0.0, "acc": acc}


def train_sandwich(elastic, train_split, train, steps: int, *, n_random: int, seed: int, log=None,
                   progress: bool = True, desc: str = "sandwich") -> dict:
    """Train the shared weights of `elastic` (nasgraph.elastic.ElasticSupernet) for `steps` steps
    with the spec's optimizer settings (`train`: TrainSpec). `log(record)` gets a row every few steps."""
    space = elastic.space
    weights = elastic.supernet.weight_parameters()
    opt = torch.optim.AdamW(weights, lr=train.lr, weight_decay=train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(train.warmup_steps, steps))
    stream = BatchStream(train_split, train.batch_size, seed, "train")
    rng = random.Random(seed)
    elastic.train()
    window, t0 = [], time.perf_counter()
    every = max(1, min(50, steps // 20))
    for step in tqdm(range(steps), desc=desc, disable=not progress, dynamic_ncols=True, leave=False):
        tokens, labels = stream.next()
        window.append(sandwich_step(elastic, opt, tokens, labels, sandwich(space, rng, n_random), train.grad_clip))
        sched.step()
        if log is not None and ((step + 1) % every == 0 or step + 1 == steps):
            log({"step": step + 1, "split": "train", **{k: float(np.mean([w[k] for w in window])) for k in window[0]},
                 "lr": sched.get_last_lr()[0], "seconds": round(time.perf_counter() - t0, 2)})
            window.clear()
    elastic.eval()
    return {"steps": steps, "seconds": round(time.perf_counter() - t0, 2)}
