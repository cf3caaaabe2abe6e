"""Residual add of two or more same-shaped inputs."""
from __future__ import annotations

import torch

from nasgraph.ops.base import Op, ShapeError, fmt
from nasgraph.ops.registry import register


@register("add")
class Add(Op):
    n_inputs = -1
    positionwise = True

    @classmethod
    def infer_shape(cls, config, inputs, ctx):
        if len(inputs) < 2:
            raise ShapeError(f"add needs at least 2 inputs, got {len(inputs)}")
        if any(s != inputs[0] for s in inputs[1:]):
            raise ShapeError("add inputs differ in shape: " + " vs ".join(fmt(s) for s in inputs))
        return inputs[0]

    def forward(self, *xs: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
