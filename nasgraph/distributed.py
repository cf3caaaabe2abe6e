"""Data parallelism under torchrun: `torchrun --nproc_per_node N -m nasgraph search|train ...`.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `group(device)` joins the
process group they describe (gloo on the CPU, nccl on CUDA) and leaves it afterwards. Without them
(a plain `nasgraph` process) every helper here is a no-op for a world of one.

The scheme is torch.distributed's own: every rank builds the same global batch from the same seeded
stream and keeps its shard (`shard`); the weights train inside DistributedDataParallel (gradients
all-reduced); alpha gradients, computed outside DDP with autograd.grad, are averaged with
`all_reduce_mean`. Rank 0 alone writes files (`is_writer`); code whose result other ranks read from
disk runs on rank 0 first (`rank0_first`), and a value only rank 0 may measure is broadcast
(`from_rank0`).
"""
from __future__ import annotations

import contextlib
import datetime
import os
from typing import Callable, TypeVar

import torch
import torch.distributed as dist

from nasgraph.errors import NasgraphError

T = TypeVar("T")
TIMEOUT_ENV = "NASGRAPH_DIST_TIMEOUT"   # seconds a collective waits for the other ranks (default 1800)


def launched() -> bool:
    """Whether torchrun started this process as one of several ranks."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (torchrun's RANK before and after the group exists; 0 outside torchrun)."""
    if active():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0")) if launched() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_writer() -> bool:
    """Rank 0 (or the only process): the one that writes the run folder, progress bars and reports."""
    return rank() == 0


@contextlib.contextmanager
def group(device: torch.device):
    """Join torchrun's process group for the block (gloo for the CPU, nccl for CUDA); a no-op outside torchrun
    or when a group already exists. The ranks leave together (a barrier), after the run's collective writes."""
    if not launched() or (dist.is_available() and dist.is_initialized()):
        yield
        return
    if not dist.is_available():
        raise NasgraphError("torchrun started several ranks but this torch build has no torch.distributed")
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    timeout = datetime.timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, "1800")))
    dist.init_process_group(backend, timeout=timeout, **({"device_id": device} if device.type == "cuda" else {}))
    try:
        yield
        dist.barrier()
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if active():
        dist.barrier()


@contextlib.contextmanager
def rank0_writes():
    """Every rank meets before and after the block, inside which rank 0 writes: a file is then either
    unwritten for every rank (read before) or written for every rank (read after)."""
    barrier()
    yield
    barrier()   # not reached when the block raised: that rank exits, and torchrun stops the others


@contextlib.contextmanager
def rank0_first():
    """Rank 0 runs the block, then the other ranks (they see what it wrote or downloaded)."""
    if is_writer():
        yield
        barrier()
    else:
        barrier()
        yield


def from_rank0(fn: Callable[[], T]) -> T:
    """fn() on rank 0, its result sent to every rank (a measurement the ranks must agree on)."""
    if not active():
        return fn()
    box = [fn() if is_writer() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_mean(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean of each tensor over the ranks (in place; the same list back)."""
    if active():
        n = world_size()
        for t in tensors:
            dist.all_reduce(t)
            t.div_(n)
    return tensors


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sums over the ranks of a few numbers (one collective)."""
    if not active():
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def weighted_mean(value: float, weight: float, device: torch.device) -> float:
    """The global batch's mean of a per-rank mean `value` with its `shard` weight (`value` itself in one process)."""
    if not active():
        return value
    return all_reduce_sum([value * weight if weight else 0.0], device)[0] / world_size()


def shard(batch: tuple[torch.Tensor, torch.Tensor], count: Callable[[torch.Tensor], int]
          ) -> tuple[tuple[torch.Tensor, torch.Tensor], float]:
    """This rank's part of a global batch (tokens (B, T), labels (B,) | (B, T)) and its loss weight.

    The weight `world * n_rank / n_global` (n: `count(labels)`, the labelled targets) makes DDP's
    average of the ranks' mean losses the global batch's mean loss, for uneven shards (a short last
    batch) and per-position labels alike. A rank left without examples trains on the first one at
    weight 0, so that it still joins the all-reduce."""
    if not active():
        return batch, 1.0
    tokens, labels = batch
    parts = list(zip(tokens.tensor_split(world_size()), labels.tensor_split(world_size())))
    mine = parts[rank()]
    total = count(labels)
    if len(mine[0]) == 0 or total == 0:
        return (tokens[:1], labels[:1]), 0.0
    return mine, world_size() * count(mine[1]) / total


def check_same(tensors: dict[str, torch.Tensor], what: str) -> None:
    """NasgraphError unless every rank holds exactly rank 0's values: the ranks must never drift apart
    (NNI's issue #5013: its ranks returned different architectures)."""
    if not active():
        return
    names = list(tensors)
    differ = torch.zeros(len(names), dtype=torch.float64, device=next(iter(tensors.values())).device)
    for i, name in enumerate(names):
        t = tensors[name].detach()
        t = t.to(torch.uint8) if t.dtype == torch.bool else t
        ref = t.clone()
        dist.broadcast(ref, src=0)
        differ[i] = 0.0 if torch.equal(t, ref) else 1.0
    dist.all_reduce(differ, op=dist.ReduceOp.MAX)
    bad = [n for n, d in zip(names, differ.tolist()) if d]
    if bad:
        raise NasgraphError(f"the ranks' {what} differ ({', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}); "
                            f"data-parallel ranks must stay identical")


def debug_dump(name: str, data: dict) -> None:
    """Test hook: with NASGRAPH_DEBUG_RANK_DIR set, each rank writes DIR/NAME-rank<r>.json (the ranks' own views,
    which the run folder, rank 0's alone, cannot show)."""
    folder = os.environ.get("NASGRAPH_DEBUG_RANK_DIR")
    if folder:
        import json

        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"{name}-rank{rank()}.json"), "w", encoding="utf-8") as f:
            json.dump(data, f)


def wrap(model: torch.nn.Module, device: torch.device, *, ignore: tuple[str, ...] = (),
         find_unused: bool = False) -> torch.nn.Module:
    """`model` inside DistributedDataParallel when several ranks run, else `model` itself.

    `ignore`: parameter names DDP leaves alone (the alphas: their gradients are averaged by the
    architecture step itself); `find_unused`: a forward may leave parameters out (GDAS runs only the
    candidates it samples)."""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    if ignore:
        DDP._set_params_and_buffers_to_ignore_for_model(model, list(ignore))
    ids = [device.index] if device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)
