"""count_flops(module, inputs): fvcore's jit tracing with our handle table, loud about unknown ops."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nasgraph.flops.handles import HANDLES, ZERO_COST_OPS

with warnings.catch_warnings():  # fvcore's import emits DeprecationWarnings (torch.jit.script)
    warnings.simplefilter("ignore")
    from fvcore.nn.jit_analysis import JitModelAnalysis


class UnsupportedOpError(RuntimeError):
    """The traced forward ran an op that has no FLOP handle and is not on the zero-cost list."""


@dataclass(frozen=True)
class FlopReport:
    """FLOPs of one forward (1 multiply-add = 1 FLOP).

    total: the whole module. by_module: module path ("" = root, "q_proj", "block.0.attn", as
    fvcore's by_module) -> FLOPs inside it, children included. by_op: op name ("linear", "softmax",
    "scaled_dot_product_attention", ...) -> FLOPs.
    """

    total: int
    by_module: dict[str, int] = field(default_factory=dict)
    by_op: dict[str, int] = field(default_factory=dict)


class _Analysis(JitModelAnalysis):
    """fvcore's analysis with only our handles and our zero-cost list (fvcore ignores relu, clamp, max)."""

    def __init__(self, module: nn.Module, inputs: tuple[torch.Tensor, ...]):
        super().__init__(module, inputs)
        self._ignored_ops = set(ZERO_COST_OPS)
        self.set_op_handle(**HANDLES)
        self.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")


def _unsupported_message(analysis: _Analysis) -> str:
    """Name each unhandled op, how often it ran, and the innermost modules that ran it."""
    stats = analysis._stats
    lines = []
    for op, times in sorted(stats.unsupported_ops[""].items()):
        where = [m for m, ops in stats.unsupported_ops.items() if op in ops]
        innermost = [m for m in where if not any(o != m and o.startswith(m + ".") for o in where) and m]
        lines.append(f"{op} ({times}x, in {', '.join(sorted(innermost)) or '<root>'})")
    return ("FLOP counting: no handle for " + "; ".join(lines) + ". Add a handle to "
            "nasgraph/flops/handles.py HANDLES, or list the op in ZERO_COST_OPS if it does no arithmetic.")


def count_flops(module: nn.Module, inputs: torch.Tensor | tuple[Any, ...]) -> FlopReport:
    """Trace one forward of `module` on `inputs` and count its FLOPs with our handles.

    Raises UnsupportedOpError naming every op that is neither handled nor known to cost nothing.
    The module runs in its current mode (call .eval() first for inference counts).

    Example:
        >>> count_flops(nn.Linear(8, 4), torch.randn(2, 8)).total   # 2 * 8 * 4
        64
    """
    inputs = inputs if isinstance(inputs, tuple) else (inputs,)
    analysis = _Analysis(module, inputs)
    fvcore_log = logging.getLogger("fvcore")
    level = fvcore_log.level
    fvcore_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            by_module = analysis.by_module()
    finally:
        fvcore_log.setLevel(level)
    if analysis.unsupported_ops(""):
        raise UnsupportedOpError(_unsupported_message(analysis))
    by_op = analysis.by_operator("")
    return FlopReport(total=int(by_module[""]), by_module={k: int(v) for k, v in by_module.items()},
                      by_op={k: int(v) for k, v in sorted(by_op.items())})


def attention_flops(name: str, d_model: int, n_heads: int, T: int, batch: int = 1, causal: bool = False,
                    max_len: int | None = None, **options: Any) -> FlopReport:
    """FLOPs of one eval forward of attention type `name` on x: (batch, T, d_model), no padding mask.

    Bounded types get max_len = T unless given. `options` are the type's own (e.g. window=16).

    Example:
        >>> attention_flops("softmax", d_model=64, n_heads=4, T=128).total
    """
    from nasgraph.attention import build, get

    if max_len is None and get(name).caps.bounded:
        max_len = T
    with torch.random.fork_rng():  # building must not move the caller's random stream
        attn = build(name, d_model, n_heads, causal=causal, max_len=max_len, **options).eval()
        x = torch.randn(batch, T, d_model)                                      # (B, T, d_model)
    return count_flops(attn, (x,))
