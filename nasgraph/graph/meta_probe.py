"""Running modules on PyTorch's meta device (shapes only, no memory) to measure what they would cost.

Under `MetaInit()` and `torch.device("meta")` a module is built without allocating or initialising
it; `cost_at_length()` runs it (`MixedForward` for a choice point, every candidate at once) at
batch 1 and reports the bytes autograd saves for backward, the largest tensor the forward creates and
its FLOPs (matmuls and convolutions; 1 multiply-add = 1 FLOP), extrapolating lengths past PROBE_LEN.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

PROBE_LEN = 1024


class _LargestTensor(TorchDispatchMode):
    """The largest tensor any op creates (views excluded): the transient working memory of a forward."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor) and not t._is_view():
                self.largest = max(self.largest, t.numel() * t.element_size())
        return out


class _SavedBytes:
    """Bytes autograd keeps for backward (saved activations; parameters and repeats not counted)."""

    def __init__(self):
        self.total, self._seen = 0, {}

    def pack(self, t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t
        if not (base.is_leaf and base.requires_grad) and id(base) not in self._seen:
            self._seen[id(base)] = base                              # keeps ids unique while counting
            self.total += base.numel() * base.element_size()
        return t


class _MathSDPA(TorchFunctionMode):
    """scaled_dot_product_attention as matmul-softmax-matmul: on meta tensors PyTorch's own SDPA
    loads its compiler stack (seconds); this gives the same shapes and FLOPs and what the math
    kernel saves for backward (an upper bound of the fused kernels')."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        q, k, v = args[:3]
        mask = kwargs.get("attn_mask", args[3] if len(args) > 3 else None)
        logits = q @ k.transpose(-2, -1)                                    # (..., L, S)
        if mask is not None:
            logits = logits.masked_fill(~mask, 0.0) if mask.dtype == torch.bool else logits + mask
        return logits.softmax(-1) @ v                                       # (..., L, Ev)


_RANDOM_FILLS = {"normal_", "uniform_", "random_", "exponential_", "bernoulli_", "cauchy_", "log_normal_",
                 "geometric_", "trunc_normal_", "orthogonal_", "xavier_uniform_", "xavier_normal_",
                 "kaiming_uniform_", "kaiming_normal_", "sparse_"}


class MetaInit(TorchFunctionMode):
    """Random initialisation and random factories make empty meta tensors (PyTorch's own meta path
    for them loads its compiler stack, seconds, for values that do not exist)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs, name = kwargs or {}, getattr(func, "__name__", "")
        target = args[0] if args else kwargs.get("tensor", kwargs.get("self"))
        if name in _RANDOM_FILLS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        if name in ("randn", "rand") and str(kwargs.get("device")) == "meta":
            kwargs.pop("generator", None)
            return torch.empty(*args, **kwargs)
        if name == "randint" and str(kwargs.get("device")) == "meta":
            size = kwargs.pop("size", args[-1] if args else ())
            return torch.empty(size, dtype=kwargs.get("dtype") or torch.long, device="meta")
        if name == "randperm" and str(kwargs.get("device")) == "meta":
            return torch.empty(args[0], dtype=kwargs.get("dtype") or torch.long, device="meta")
        if name in ("randn_like", "rand_like") and isinstance(target, torch.Tensor) and target.is_meta:
            return torch.empty_like(target)
        return func(*args, **kwargs)


def _probe(module, inputs_at, T: int, mask_at) -> tuple[int, int, int]:
    """(bytes saved for backward, largest tensor, FLOPs) of module(*inputs) on meta tensors at length T."""
    saved, largest, flops = _SavedBytes(), _LargestTensor(), FlopCounterMode(display=False)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t), \
            _MathSDPA(), flops, largest:
        module(*inputs_at(T), mask=mask_at(T))
    return saved.total, largest.largest, flops.get_total_flops() // 2


def cost_at_length(module, inputs_at, mask_at, T: int) -> tuple[int, ...]:
    """_probe's figures at length T, probed directly up to PROBE_LEN, extrapolated past it."""
    if T <= PROBE_LEN:
        return _probe(module, inputs_at, T, mask_at)
    half, full = _probe(module, inputs_at, PROBE_LEN // 2, mask_at), _probe(module, inputs_at, PROBE_LEN, mask_at)
    out = []
    for lo, hi in zip(half, full):
        exponent = min(2.0, max(1.0, math.log2(hi / lo))) if lo > 0 and hi > 0 else 1.0
        out.append(int(hi * (T / PROBE_LEN) ** exponent))
    return tuple(out)


class MixedForward(torch.nn.Module):
    """A choice point as the supernet runs it: every candidate's heads, then the shared projection."""

    def __init__(self, mixed):
        super().__init__()
        self.mixed = mixed

    def forward(self, x, mask=None):
        out = sum(c.heads(x, mask) for c in self.mixed.candidates)        # (B, T, H, dh)
        return self.mixed.out_proj(out.flatten(2))                         # (B, T, D)
