"""Graph pass: widen a trailing-1 operand of an elementwise op before ONNX Runtime broadcasts it.

ORT 1.32's CPU broadcasting is slow when one operand ends in a size-1 axis and the other does not
(x (B, H, T, d) * w (T, 1): the kernel loops over T*H spans of d elements, each a scalar-times-vector
call). Measured 2026-12-01, 1 thread, CPU time, x 1x4x2048x16 floats: Mul by (2048, 1) 0.13-0.18 ms,
by (2048, 16) 0.035 ms; Div by (1, 4, 2048, 1) 0.13-0.21 ms, by the full shape 0.045 ms. Widening the
narrow operand with Expand costs as much (the same broadcasting), but a MatMul by a ones row
(..., 1) @ (1, d) writes the (..., d) operand in one GEMM: Mul 0.036 ms and Div 0.049-0.061 ms with
the MatMul included. The result is bit-identical (each output element is w * 1.0; only a -0.0
operand turns into +0.0, which changes nothing but the sign of a division by zero).

The widening MatMuls are not linear layers: `widening_matmuls(model)` names them so int8 quantization
leaves them in fp32 (quantizing one rounds the linear family's normaliser to 8 bits per call:
ListOps linear d_model 256 lost 14.6 test points under dynamic int8 until they were excluded).

Where it applies in our models: the cosFormer re-weighting f * sin(pi i / 2M) and f * cos(...) ((T, 1)
angles), the linear family's normaliser num / den (den (B, H, T, 1)), performer's x w - |x|^2 / 2.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ELEMENTWISE = ("Mul", "Div", "Add", "Sub")


def _shapes(graph: onnx.GraphProto) -> dict[str, tuple[list, int]]:
    """{tensor name: (dims, elem_type)} from value_info, inputs, outputs and initializers; a dim is
    an int or a symbol (str)."""
    out = {}
    for v in list(graph.value_info) + list(graph.input) + list(graph.output):
        t = v.type.tensor_type
        if t.HasField("shape"):
            out[v.name] = ([d.dim_param if d.HasField("dim_param") or not d.HasField("dim_value") else d.dim_value
                            for d in t.shape.dim], t.elem_type)
    for init in graph.initializer:
        out[init.name] = (list(init.dims), init.data_type)
    return out


def _narrow_operand(node: onnx.NodeProto, shapes) -> tuple[int, int] | None:
    """(index of the operand to widen, width) when one float operand ends in a static 1 that the
    other's static last dim n > 1 broadcasts, and the narrow one is not a scalar; else None."""
    if node.op_type not in ELEMENTWISE or node.domain not in ("", "ai.onnx") or len(node.input) != 2:
        return None
    (a, ta), (b, tb) = shapes.get(node.input[0], (None, 0)), shapes.get(node.input[1], (None, 0))
    if not a or not b or ta != TensorProto.FLOAT or tb != TensorProto.FLOAT:
        return None
    for narrow, wide in ((0, b), (1, a)):
        dims = (a, b)[narrow]
        n = wide[-1]
        if dims[-1] == 1 and isinstance(n, int) and n > 1 and len(dims) >= 2 and any(d != 1 for d in dims[:-1]):
            return narrow, n
    return None


def widen_narrow_broadcasts(model: onnx.ModelProto) -> int:
    """Feed every elementwise op whose operand ends in a broadcast size-1 axis (see the module doc)
    that operand widened by MatMul(operand, ones(1, n)) (a constant operand: widened in place).
    Returns how many operands were widened."""
    graph = model.graph
    shapes = _shapes(graph)
    inits = {i.name: i for i in graph.initializer}
    widened: dict[tuple[str, int], str] = {}
    nodes: list[onnx.NodeProto] = []
    count = 0
    for node in graph.node:
        found = _narrow_operand(node, shapes)
        if found is not None:
            index, n = found
            name = node.input[index]
            key = (name, n)
            if key not in widened:
                widened[key] = f"{name}__wide{n}"
                if name in inits:                                           # a constant: broadcast it now
                    value = numpy_helper.to_array(inits[name])
                    graph.initializer.append(numpy_helper.from_array(
                        np.ascontiguousarray(np.broadcast_to(value, value.shape[:-1] + (n,))), widened[key]))
                else:
                    ones = f"ones_1x{n}"
                    if ones not in inits:
                        inits[ones] = numpy_helper.from_array(np.ones((1, n), np.float32), ones)
                        graph.initializer.append(inits[ones])
                    nodes.append(helper.make_node("MatMul", [name, ones], [widened[key]], name=f"widen_{name}_{n}"))
            node.input[index] = widened[key]
            count += 1
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def widening_matmuls(model: onnx.ModelProto) -> list[str]:
    """Names of the MatMul nodes that widen an operand by a constant ones row (1, n): what
    `widen_narrow_broadcasts` inserts (found by what they compute, not by name)."""
    ones = {i.name for i in model.graph.initializer
            if len(i.dims) == 2 and i.dims[0] == 1 and i.data_type == TensorProto.FLOAT
            and np.all(numpy_helper.to_array(i) == 1.0)}
    return [n.name for n in model.graph.node
            if n.op_type == "MatMul" and n.domain in ("", "ai.onnx") and len(n.input) == 2 and n.input[1] in ones]
