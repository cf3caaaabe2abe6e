"""Where a run computes: `train.device` (auto | cpu | cuda | cuda:N) and `train.precision` (fp32 | bf16 | fp16).

`check_device` (nasgraph.spec.schema) is the syntax check (spec load, `--device`); `resolve_device`
turns a valid value into a torch.device on this machine: `auto` is the first GPU when CUDA is
available, else the CPU (with a note); `cuda` without CUDA is an error. Under torchrun each rank
takes the GPU of its LOCAL_RANK. `runtime_train` does both for a loaded spec, with located errors.

Precision: bf16 and fp16 run the forward under torch.autocast (weights and optimizer state stay fp32);
fp16 scales the loss with a GradScaler. bf16 autocast also runs on the CPU; fp16 needs CUDA.
"""
from __future__ import annotations

import contextlib
import functools
import os
import sys

import torch

from nasgraph.errors import NasgraphError
from nasgraph.spec.schema import DEVICE_CHOICES, check_device

PRECISIONS = ("fp32", "bf16", "fp16")


class DeviceError(NasgraphError):
    """A device or precision this machine cannot run (the caller says where the value came from)."""


def _local_rank() -> int | None:
    """This process's LOCAL_RANK under torchrun with several processes, else None."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ:
        return int(os.environ["LOCAL_RANK"])
    return None


_FELL_BACK: list[bool] = []      # set when `auto` resolved to the CPU; announced when training starts


@functools.lru_cache(maxsize=None)
def _say_cpu_fallback() -> None:
    if os.environ.get("RANK", "0") == "0":        # once per process, by rank 0 only
        print("nasgraph: note: device auto: no CUDA device available; running on the CPU", file=sys.stderr)


def announce(device: torch.device) -> None:
    """Say, once, that `auto` fell back to the CPU: called when training starts, after every check of the
    input, so that a refusal stays one line."""
    if _FELL_BACK and device.type == "cpu":
        _say_cpu_fallback()


def resolve_device(text: str) -> torch.device:
    """The torch.device for a device name (auto, cpu, cuda, cuda:N); DeviceError when this machine lacks it.

    Under torchrun with several ranks, `cuda` (and `auto` on a GPU machine) is the GPU of LOCAL_RANK."""
    name = check_device(text)
    if name == "auto":
        if not torch.cuda.is_available():
            _FELL_BACK.append(True)
            return torch.device("cpu")
        name = "cuda"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "no usable GPU"
        raise DeviceError(f"{text}: CUDA is not available on this machine (torch {torch.__version__}, {build}); "
                          f"use cpu or auto (valid: {DEVICE_CHOICES})")
    local, count = _local_rank(), torch.cuda.device_count()
    index = int(name.split(":")[1]) if ":" in name else (local or 0)
    if local is not None and index != local:
        raise DeviceError(f"{text}: under torchrun every rank takes the GPU of its LOCAL_RANK; set cuda (or auto)")
    if index >= count:
        raise DeviceError(f"{text}: GPU {index} does not exist (this machine has {count}: cuda:0..cuda:{count - 1})")
    return torch.device("cuda", index)


def runtime_train(doc, device: str | None = None):
    """`doc`'s TrainSpec with its device resolved on this machine ("cpu", "cuda:0"): `device` (--device)
    overrides train.device. Errors name the spec's file, line and key (or --device): a device this
    machine lacks, a precision the device cannot run, a batch the torchrun ranks cannot split evenly."""
    train = doc.spec.train
    try:
        where = resolve_device(device or train.device)
    except DeviceError as err:
        if device:
            raise DeviceError(f"--device {err}") from None
        raise doc.error(f"{err}", ("train", "device")) from None
    try:
        check_precision(train.precision, where)
    except DeviceError as err:
        raise doc.error(f"{err}", ("train", "precision")) from None
    ranks = int(os.environ.get("WORLD_SIZE", "1"))
    if train.batch_size % ranks:
        raise doc.error(f"{train.batch_size} is the global batch, split over the {ranks} torchrun ranks; it must be "
                        f"a multiple of {ranks} (per-rank batch = batch_size / ranks)", ("train", "batch_size"))
    return train.model_copy(update={"device": str(where)})


def check_precision(precision: str, device: torch.device) -> None:
    """DeviceError when `device` cannot run `precision` (fp16 needs CUDA; bf16 on a GPU needs support)."""
    if precision == "fp16" and device.type != "cuda":
        raise DeviceError(f"fp16 needs a CUDA device (this run is on the {device.type.upper()}); on the CPU use "
                          f"bf16 or fp32 (valid: {', '.join(PRECISIONS)})")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"bf16: {torch.cuda.get_device_name(device)} has no bf16 support; use fp16 or fp32")


def autocast(device: torch.device, precision: str):
    """The forward's autocast context for `precision` (a no-op context for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler | None:
    """A GradScaler for fp16 (its small range underflows unscaled gradients), None otherwise."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def to_device(batch: tuple[torch.Tensor, ...], device: torch.device) -> tuple[torch.Tensor, ...]:
    """A batch's tensors on `device`."""
    return tuple(t.to(device, non_blocking=device.type == "cuda") for t in batch)


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (the CPU for one without parameters)."""
    p = next(module.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
