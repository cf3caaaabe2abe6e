"""The state of a decoding model as named graph tensors: `past.<name>` in, `present.<name>` out.

The layout comes from nasgraph.decoding.state_spec (each state tensor's layer, symbolic shape, dtype
and initial value) plus each layer's attention type; the structure of the state object is kept as a
pytree spec, so the graphs take and return flat tensors whatever nasgraph.decoding nests.

Example:
    >>> layout = StateLayout.of(model)
    >>> [t.entry()["shape"] for t in layout.tensors]
    [['batch', 2, 'cache', 8], ['batch', 2, 'cache', 8], ['batch', 2, 8, 8]]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch.utils import _pytree as pytree

from exporters.errors import ExportError

PAST, PRESENT = "past.", "present."
SYMBOLS = {"B": "batch", "S": "cache"}   # nasgraph.decoding's symbols -> the ONNX dim names


@dataclass(frozen=True)
class StateTensor:
    """One state tensor of one layer."""

    name: str                           # "L0.attention.k_cache"
    layer: str                          # graph node, "L0.attention"
    type: str                           # attention type, "softmax"
    shape: tuple[int | str, ...]        # ints, "batch", "cache" (grows by one position per token)
    dtype: str = "float32"
    fill: float = 0.0                   # value before the first token

    @property
    def input(self) -> str:
        return PAST + self.name

    @property
    def output(self) -> str:
        return PRESENT + self.name

    def entry(self) -> dict[str, Any]:
        """The tensor's record in the `nasgraph.decode` metadata."""
        init = "zeros" if self.fill == 0 else f"full({self.fill:g})"
        if "cache" in self.shape:
            init += ", cache length 0"
        return {"input": self.input, "output": self.output, "layer": self.layer, "type": self.type,
                "shape": list(self.shape), "dtype": self.dtype, "fill": self.fill, "init": init,
                "grows": "cache" in self.shape}


@dataclass
class StateLayout:
    """The state tensors in graph order, and how to rebuild nasgraph.decoding's state object."""

    tensors: list[StateTensor]
    spec: Any                           # pytree spec of the state object

    @classmethod
    def of(cls, model: torch.nn.Module) -> "StateLayout":
        """The layout of `model`'s decoding state; ExportError naming the layer that cannot decode."""
        from nasgraph import decoding
        from nasgraph.errors import NasgraphError

        try:
            described, layers = decoding.state_spec(model), decoding.attention_layers(model)
        except NasgraphError as err:
            raise ExportError(f"no decoding graphs: {err}") from None
        types = [kind for layer in layers.values() for kind in _tensor_types(layer)]
        tensors = [StateTensor(t.name, t.layer, kind, tuple(SYMBOLS.get(d, d) for d in t.shape),
                               str(t.dtype).removeprefix("torch."), float(t.fill))
                   for t, kind in zip(described, types)]
        return cls(tensors, pytree.tree_flatten(decoding.init_state(model, 1))[1])

    @property
    def inputs(self) -> list[str]:
        return [t.input for t in self.tensors]

    @property
    def outputs(self) -> list[str]:
        return [t.output for t in self.tensors]

    def flatten(self, state: Any) -> list[torch.Tensor]:
        """nasgraph.decoding's state -> the tensors in graph order."""
        leaves, spec = pytree.tree_flatten(state)
        if spec != self.spec:
            raise ExportError(f"the state's structure changed during decoding: {spec} vs {self.spec}")
        return leaves

    def unflatten(self, tensors: Sequence[torch.Tensor]) -> Any:
        """Tensors in graph order -> nasgraph.decoding's state object."""
        return pytree.tree_unflatten(list(tensors), self.spec)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """{input name: {axis: "batch" | "cache"}} for the step graph's state inputs."""
        return {t.input: {i: d for i, d in enumerate(t.shape) if isinstance(d, str)} for t in self.tensors}


def _tensor_types(layer: torch.nn.Module) -> list[str]:
    """The attention type of each of a layer's state tensors (per-head layers: of its group)."""
    groups = getattr(layer, "groups", [layer])
    return [g.name for g in groups for _ in g.state_shapes()]
