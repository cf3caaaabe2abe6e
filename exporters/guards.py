"""Input checks inside an exported graph, so a raw ONNX Runtime session fails clearly instead of
computing garbage.

ONNX has no assert op. A guard is a Reshape of the token input to its own shape when the check
holds, and to the impossible shape [-1, -1] when it fails; every consumer of the input reads the
guarded tensor, so no optimiser can drop it. ORT then raises
`... running Reshape node. Name:'<the guard's message>' ...`: the node's name is the message.
Cost: one pass over the (B, T) token ids.

Guards:
- `max_len`: the sequence axis must be <= max_len (beyond it learned positions fail with a
  broadcast error and unbounded attention types run silently on lengths never trained);
- `no_padding`: no token may be the pad id (the unpadded variant attends to every position);
- `position_guard`: a step graph's position must lie in 0 .. max_len - 1.

Example:
    >>> write_onnx(..., graph_pass=token_guards("tokens", max_len=101, no_padding=True))
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "nasgraph_guard"


def max_len_message(max_len: int) -> str:
    return f"{PREFIX}: sequence length exceeds the model's max_len {max_len}; truncate the input"


def padding_message(pad_id: int) -> str:
    return (f"{PREFIX}: token {pad_id} (padding) in the input of the unpadded graph; run the padded "
            f"model for batches with padding")


def token_guards(input_name: str, *, max_len: int | None = None, no_padding: bool = False,
                 pad_id: int = 0) -> Callable[[onnx.ModelProto], None]:
    """A graph pass (for write_onnx) adding the requested checks on `input_name` (B, T)."""

    def apply(model: onnx.ModelProto) -> None:
        graph = model.graph
        if input_name not in {i.name for i in graph.input}:
            raise ValueError(f"no graph input '{input_name}' to guard; inputs: {[i.name for i in graph.input]}")
        nodes: list[onnx.NodeProto] = []
        current = input_name
        const = lambda name, value: graph.initializer.append(numpy_helper.from_array(np.asarray(value), name))  # noqa: E731
        const(f"{PREFIX}_bad_shape", np.array([-1, -1], dtype=np.int64))
        nodes.append(helper.make_node("Shape", [input_name], [f"{PREFIX}_shape"], name=f"{PREFIX}_shape"))
        if max_len is not None:
            const(f"{PREFIX}_max_len", np.array([max_len], dtype=np.int64))
            nodes += [helper.make_node("Slice", [f"{PREFIX}_shape", f"{PREFIX}_one", f"{PREFIX}_two"],
                                       [f"{PREFIX}_seq"], name=f"{PREFIX}_seq"),
                      helper.make_node("LessOrEqual", [f"{PREFIX}_seq", f"{PREFIX}_max_len"], [f"{PREFIX}_len_ok"],
                                       name=f"{PREFIX}_len_ok")]
            const(f"{PREFIX}_one", np.array([1], dtype=np.int64))
            const(f"{PREFIX}_two", np.array([2], dtype=np.int64))
            current = _reshape_unless(nodes, current, f"{PREFIX}_len_ok", max_len_message(max_len))
        if no_padding:
            const(f"{PREFIX}_pad", np.array(pad_id, dtype=np.int64))
            const(f"{PREFIX}_zero", np.array(0, dtype=np.int32))
            nodes += [helper.make_node("Equal", [current, f"{PREFIX}_pad"], [f"{PREFIX}_is_pad"], name=f"{PREFIX}_is_pad"),
                      helper.make_node("Cast", [f"{PREFIX}_is_pad"], [f"{PREFIX}_is_pad_i"], to=TensorProto.INT32,
                                       name=f"{PREFIX}_is_pad_i"),
                      helper.make_node("ReduceMax", [f"{PREFIX}_is_pad_i"], [f"{PREFIX}_any_pad"], keepdims=0,
                                       name=f"{PREFIX}_any_pad"),
                      helper.make_node("Equal", [f"{PREFIX}_any_pad", f"{PREFIX}_zero"], [f"{PREFIX}_pad_ok"],
                                       name=f"{PREFIX}_pad_ok")]
            current = _reshape_unless(nodes, current, f"{PREFIX}_pad_ok", padding_message(pad_id))
        if current == input_name:
            return
        for node in graph.node:
            node.input[:] = [current if i == input_name else i for i in node.input]
        for out in graph.output:
            if out.name == input_name:
                raise ValueError(f"graph input '{input_name}' is also an output; cannot guard it")
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)

    return apply


def position_guard(input_name: str, max_len: int) -> Callable[[onnx.ModelProto], None]:
    """A graph pass checking a scalar int64 position input: 0 <= position < max_len (the step graph's
    position indexes learned positions; past max_len the model was never trained). The check is a
    Gather of the position from the table 0 .. max_len - 1 (a negative position is sent past its end)
    named by the message: a Reshape guard on a scalar is optimised away by ONNX Runtime. An exporter
    that dropped the input as unused gets it back, so every step graph takes the same inputs."""

    def apply(model: onnx.ModelProto) -> None:
        graph, p = model.graph, f"{PREFIX}_pos"
        if input_name not in {i.name for i in graph.input}:
            graph.input.insert(1, helper.make_tensor_value_info(input_name, TensorProto.INT64, []))
            return
        for name, value in ((f"{p}_table", np.arange(max_len)), (f"{p}_zero", 0), (f"{p}_past_end", max_len)):
            graph.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=np.int64), name))
        nodes = [helper.make_node("GreaterOrEqual", [input_name, f"{p}_zero"], [f"{p}_ok"], name=f"{p}_ok"),
                 helper.make_node("Where", [f"{p}_ok", input_name, f"{p}_past_end"], [f"{p}_index"], name=f"{p}_index"),
                 helper.make_node("Gather", [f"{p}_table", f"{p}_index"], [f"{p}_guarded"], name=position_message(max_len))]
        for node in graph.node:
            node.input[:] = [f"{p}_guarded" if i == input_name else i for i in node.input]
        rest = list(graph.node)
        del graph.node[:]
        graph.node.extend(nodes + rest)

    return apply


def position_message(max_len: int) -> str:
    return f"{PREFIX}: position outside 0..{max_len - 1} (the model's max_len {max_len}); re-prefill a shorter context"


def _reshape_unless(nodes: list, tensor: str, ok: str, message: str) -> str:
    """Append `Reshape(tensor, ok ? Shape(tensor) : [-1, -1])` named `message`; returns its output."""
    out = f"{tensor}_{ok}"
    nodes += [helper.make_node("Where", [ok, f"{PREFIX}_shape", f"{PREFIX}_bad_shape"], [f"{ok}_shape"],
                               name=f"{ok}_shape"),
              helper.make_node("Reshape", [tensor, f"{ok}_shape"], [out], name=message)]
    return out
