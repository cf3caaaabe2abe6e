"""The training loop shared by `train` (a discrete model) and `search` (a supernet + a strategy).

Weights train on the train split; a strategy with an architecture step (darts, gdas) updates the
alphas on a held-out slice of it. Checkpoints are atomic and carry everything needed for `--resume`
to reproduce the uninterrupted run (model, optimizers, schedules, strategy, data positions, RNGs).
"""
from __future__ import annotations

import math
import random
import sys
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from nasgraph import distributed
from nasgraph.errors import NasgraphError
from nasgraph.threads import set_torch_threads, thread_count
from nasgraph.training.checkpoint import misfit, rng_state, set_rng_state
from nasgraph.training.data import BatchStream, evaluate
from nasgraph.training.device import announce, autocast, check_precision, resolve_device
from nasgraph.training.rundir import RunDir
from nasgraph.training.step import WeightStep, rank_batch
from nasgraph.training.tracking import Tracker


class TrainingDiverged(NasgraphError):
    """The loss became NaN or infinite; the last good checkpoint is left intact."""


def lr_lambda(warmup: int, total: int):
    """Linear warm-up, then cosine decay to 10% of the peak."""

    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        t = (step - warmup) / max(1, total - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return f


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def fit(model, splits: dict, train, run: RunDir, *, steps: int | None = None, strategy=None,
        resume: bool = False, desc: str = "train", progress: bool = True, task=None,
        cpu_marks: list | None = None) -> dict:
    """Train `model` for `steps` (default train.steps) and return the final metrics.

    `splits` holds "train" and "val" (and "test"); with a strategy, "arch" (the slice the alphas
    learn from). `train` is the spec's TrainSpec. `task` (a nasgraph.tasks.Task): evaluations report
    its metrics and the best validation step is the best on its headline metric (default: acc).

    The model trains on train.device (resolved: cpu, cuda:N) at train.precision; under torchrun each
    rank trains on its shard of every batch (nasgraph.training.step) and only rank 0 writes.
    `cpu_marks`: a list that receives (step, process CPU seconds) at the start and at each train log row.
    """
    metric = task.metric if task is not None else "acc"
    better = task.better if task is not None else (lambda a, b: a > b)
    steps = steps or train.steps
    if train.threads:
        if train.threads > thread_count():
            print(f"nasgraph: note: train.threads {train.threads} > the {thread_count()} usable cores; using "
                  f"{thread_count()}", file=sys.stderr)
        set_torch_threads(train.threads)     # min(cores available to the process, train.threads)
    device = resolve_device(train.device)
    check_precision(train.precision, device)
    model.to(device)
    opt = torch.optim.AdamW(model.weight_parameters() if hasattr(model, "weight_parameters") else model.parameters(),
                            lr=train.lr, weight_decay=train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(train.warmup_steps, steps))
    weights = WeightStep(model, opt, train, device, strategy)
    stream = BatchStream(splits["train"], train.batch_size, train.seed, "train")
    arch_stream = BatchStream(splits["arch"], train.batch_size, train.seed + 1, "arch") \
        if strategy is not None and strategy.has_arch_step else None
    start, best = 0, {"acc": -1.0, metric: task.worst if task is not None else -1.0}
    window: list[tuple[float, float]] = []    # (loss, acc) of the steps since the last train log row
    if resume:
        state = run.load_checkpoint()
        problem = misfit(model, state["model"])
        if problem:
            raise NasgraphError(f"{run.checkpoint_path.parent}: the checkpoint does not fit this run's model: {problem}")
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            sched.load_state_dict(state["sched"])
            stream.load_state(state["stream"])
            if arch_stream is not None:
                arch_stream.load_state(state["arch_stream"])
            if strategy is not None:
                strategy.load_state_dict(state["strategy"])
            start, best = int(state["step"]), dict(state["best"])
            window = [tuple(w) for w in state.get("window", [])]
            weights.load_state_dict(state.get("scaler"))
            set_rng_state(state["rng"])
        except (RuntimeError, KeyError, ValueError, TypeError, AttributeError) as err:
            raise NasgraphError(f"{run.checkpoint_path.parent}: the checkpoint does not fit this run's model or "
                                f"state ({type(err).__name__}: {str(err).splitlines()[0][:160]})") from None
    run.truncate_logs(start)   # rows after the checkpoint (all of them, killed before the first) are redone

    def checkpoint(step: int) -> None:
        run.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                             "stream": stream.state(), "arch_stream": arch_stream.state() if arch_stream else None,
                             "strategy": strategy.state_dict() if strategy else None, "step": step,
                             "best": best, "window": list(window), "rng": rng_state(),
                             "scaler": weights.state_dict()})

    tracker = Tracker(train.log_to if distributed.is_writer() else [], run.path, desc,
                      resume_step=start if resume else None)

    def log(record: dict) -> None:  # the run folder's metrics.jsonl, and TensorBoard / MLflow when asked
        run.log("metrics.jsonl", record)
        tracker.log(record)

    announce(device)                # after the resume checks: a refusal stays one line
    model.train()
    bar = tqdm(range(start, steps), desc=desc, initial=start, total=steps,
               disable=not progress or not distributed.is_writer(), dynamic_ncols=True, leave=False)
    t0 = time.perf_counter()
    if cpu_marks is not None:       # (step, process CPU s) at the start and at each train log row
        cpu_marks.append((start, time.process_time()))
    for step in bar:
        arch_info = {}
        batch = stream.next()                                               # the global batch, on the CPU
        if strategy is not None:
            strategy.before_step(step, steps, stream.epoch_progress)
            if arch_stream is not None and strategy.arch_active(step, stream.epoch_progress):
                (part, w_train), (arch, w_arch) = rank_batch(batch, device), rank_batch(arch_stream.next(), device)
                with autocast(device, "bf16" if train.precision == "bf16" else "fp32"):  # fp16: alphas in fp32
                    arch_info = strategy.arch_step(model, part, arch, opt.param_groups[0]["lr"],
                                                   weights=(w_train, w_arch))
        loss, logits, weight, mean_loss, acc = weights.loss(batch)
        if not math.isfinite(mean_loss):
            log({"step": step + 1, "split": "train", "loss": mean_loss, "status": "diverged"})
            tracker.close()
            where = f"step {best.get('checkpoint_step', 0)}" if run.checkpoint_path.exists() else "none yet"
            raise TrainingDiverged(f"loss became {mean_loss} at step {step + 1}; stopped. Last good checkpoint: "
                                   f"{run.checkpoint_path} ({where}). Lower train.lr or set train.grad_clip.")
        weights.step(loss, logits, weight)
        sched.step()
        window.append((mean_loss, acc))
        done = step + 1
        if done % max(1, min(50, steps // 20)) == 0 or done == steps:
            rec = {"step": done, "split": "train", "loss": float(np.mean([w[0] for w in window])),
                   "acc": float(np.mean([w[1] for w in window])), "lr": sched.get_last_lr()[0],
                   "epoch": round(stream.epoch_progress, 4), "seconds": round(time.perf_counter() - t0, 2)}
            if strategy is not None:
                rec.update(strategy.metrics(model))
                run.log("alphas.jsonl", {"step": done, **strategy.snapshot(model)})
            rec.update(arch_info)
            log(rec)
            if cpu_marks is not None:
                cpu_marks.append((done, time.process_time()))
            bar.set_postfix({k: f"{rec[k]:.3g}" for k in ("loss", "acc", "alpha_entropy") if k in rec})
            window.clear()
        if done % train.eval_every == 0 or done == steps:
            val = evaluate(model, splits["val"], train.batch_size, train.eval_batches, task)
            log({"step": done, "split": "val", **val})
            if better(val[metric], best[metric]):
                best = {"acc": val["acc"], metric: val[metric], "step": done}
                run.save_best(model.state_dict(), done, val, metric)
        if done % train.checkpoint_every == 0 or done == steps:
            best["checkpoint_step"] = done
            checkpoint(done)
    bar.close()
    distributed.check_same(model.state_dict(), "weights and alphas")
    result = {"steps": steps, "seconds": round(time.perf_counter() - t0, 2), "best_val": best,
              "val": evaluate(model, splits["val"], train.batch_size, task=task)}
    if "test" in splits and len(splits["test"]):
        result["test"] = evaluate(model, splits["test"], train.batch_size, task=task)
        tracker.log({"step": steps, "split": "test", **result["test"]})
    tracker.close()
    return result
