"""The op contract: a typed config, a shape rule and a module whose forward takes (*inputs, mask)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Union

from torch import nn

from nasgraph.config import StrictConfig

Dim = Union[int, str]          # an int, or a symbol: "B" (batch), "T" (sequence)
Shape = tuple[Dim, ...]


class ShapeError(ValueError):
    """A shape rule was violated; the compiler turns it into a located SpecError."""


@dataclass(frozen=True)
class ModelContext:
    """Model-wide values ops default to (from the spec's model and task sections)."""

    d_model: int
    n_heads: int
    vocab_size: int
    num_classes: int
    max_len: int
    dropout: float = 0.0
    norm: str = "layer"            # layer | rms
    position: str = "learned"      # learned | sinusoidal | none
    pooling: str = "cls"           # cls | mean
    ffn_mult: float = 4.0
    ffn_hidden: int | None = None
    ffn_activation: str = "gelu"
    task_output: str = "class"     # class: (B, num_classes) logits; token: (B, T, vocab_size), causal


class OpConfig(StrictConfig):
    """Options of one op; unset fields default to the model context."""


class Op(nn.Module):
    """Base of every op. `n_inputs` is the arity (-1: any number >= 1)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[OpConfig]] = OpConfig
    n_inputs: ClassVar[int] = 1
    is_head: ClassVar[bool] = False   # gives the model's output logits (a graph must end in one)
    positionwise: ClassVar[bool] = False  # each position's output reads only that position (decodes as is)

    @classmethod
    def infer_shape(cls, config: OpConfig, inputs: list[Shape], ctx: ModelContext) -> Shape:
        """Output shape for the input shapes; raise ShapeError when they do not fit."""
        return inputs[0]

    def __init__(self, config: OpConfig, ctx: ModelContext):
        super().__init__()
        self.config, self.ctx = config, ctx


def expect(shape: Shape, pattern: Shape, what: str) -> None:
    """Check `shape` against `pattern` (ints must match exactly; symbols match symbols)."""
    if len(shape) != len(pattern) or any(
            (isinstance(p, int) and s != p) or (isinstance(p, str) and not isinstance(s, str) and p != "*")
            for s, p in zip(shape, pattern)):
        raise ShapeError(f"{what} expects input of shape {fmt(pattern)}, got {fmt(shape)}")


def fmt(shape: Shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"
