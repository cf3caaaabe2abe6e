"""The handle table: aten op name -> small function (inputs, outputs) -> FLOPs, plus the zero-cost list.

Conventions (docs/flops.md has the rationale): one multiply-add = 1 FLOP (as fvcore); bias terms of
linear/addmm/baddbmm/conv are folded into their multiply-adds; an elementwise op = 1 FLOP per output
element; a reduction (sum, mean, amax, cumsum) = 1 per input element; softmax = SOFTMAX_FLOPS per
element; ops whose output is not floating point (index arithmetic, masks) cost 0.
"""
from __future__ import annotations

import math
from typing import Any, Callable

from nasgraph.flops.einsum import einsum_macs

Handle = Callable[[list[Any], list[Any]], int]

# softmax over n: max (1), subtract (1), exp (1), sum (1), divide (1) per element = 5; the same as the
# same softmax written out with amax/sub/exp/sum/div under our elementwise and reduction rules.
SOFTMAX_FLOPS = 5
# layer_norm: mean (1), subtract (1), square (1), sum (1), scale by 1/std (1) = 5, + 1 each for weight, bias.
LAYER_NORM_FLOPS = 5
# rms_norm: square (1), sum (1), scale by 1/rms (1) = 3, + 1 for weight.
RMS_NORM_FLOPS = 3
# logsumexp: max (1), subtract (1), exp (1), sum (1) = 4 per input element (one log per row is ignored).
LOGSUMEXP_FLOPS = 4
# SDPA beyond its two products: scale (1) + softmax (SOFTMAX_FLOPS) per logit, + 1 for a float mask.
SDPA_LOGIT_FLOPS = 1 + SOFTMAX_FLOPS

_FLOAT_TYPES = {"Float", "Double", "Half", "BFloat16", "ComplexFloat", "ComplexDouble"}


def shape(value: Any) -> list[int] | None:
    """The static shape of a traced tensor value, or None (not a tensor / unknown)."""
    return list(value.type().sizes()) if value.isCompleteTensor() else None


def numel(value: Any) -> int:
    return math.prod(shape(value) or [0])


def is_float(value: Any) -> bool:
    return value.isCompleteTensor() and value.type().scalarType() in _FLOAT_TYPES


# -- handler factories ---------------------------------------------------------------------------------
def elementwise(per_element: int = 1) -> Handle:
    """`per_element` FLOPs per element of the (broadcast) output; 0 for integer/bool outputs."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return per_element * numel(outputs[0]) if is_float(outputs[0]) else 0

    return handle


def reduction(per_element: int = 1) -> Handle:
    """`per_element` FLOPs per element of the first input (or output, if larger); 0 unless float."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        if not is_float(outputs[0]):
            return 0
        return per_element * max(numel(inputs[0]), numel(outputs[0]))

    return handle


def contraction(a_index: int) -> Handle:
    """Matrix products: numel(output) * K, K = last dim of input `a_index` (1-D, batched, broadcast)."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        return numel(outputs[0]) * shape(inputs[a_index])[-1]

    return handle


def norm(per_element: int, affine_indices: tuple[int, ...]) -> Handle:
    """Normalisation: per_element FLOPs per element + 1 per element for each affine tensor present."""

    def handle(inputs: list[Any], outputs: list[Any]) -> int:
        affine = sum(1 for i in affine_indices if shape(inputs[i]) is not None)
        return (per_element + affine) * numel(inputs[0])

    return handle


# -- ops with structure --------------------------------------------------------------------------------
def einsum(inputs: list[Any], outputs: list[Any]) -> int:
    """Exact: see nasgraph.flops.einsum."""
    equation = inputs[0].toIValue()
    shapes = [shape(v) for v in inputs[1].node().inputs()]
    return einsum_macs(equation, shapes)


def convolution(inputs: list[Any], outputs: list[Any]) -> int:
    """N * prod(weight) * prod(output spatial) (transposed: input spatial); groups live in the weight."""
    x, w, out = shape(inputs[0]), shape(inputs[1]), shape(outputs[0])
    transposed = outputs[0].node().kind() == "aten::_convolution" and inputs[6].toIValue() is True
    spatial = (x if transposed else out)[2:]
    return x[0] * math.prod(w) * math.prod(spatial)


def sdpa(inputs: list[Any], outputs: list[Any]) -> int:
    """softmax(q k^T * scale + mask) v, dense: the causal form is NOT halved (see docs/flops.md).

    With L = batch * heads * Tq * Tk logits: L * (E + Ev) multiply-adds for the two products,
    L for the scale, SOFTMAX_FLOPS * L for the softmax, L more for a float attn_mask (a bool mask or
    is_causal selects, at no cost).
    """
    q, k, out = shape(inputs[0]), shape(inputs[1]), shape(outputs[0])
    e, tk, ev = q[-1], k[-2], out[-1]
    logits = numel(outputs[0]) // ev * tk                           # batch * heads * Tq * Tk
    mask = 1 if is_float(inputs[3]) else 0
    return logits * (e + ev) + logits * (SDPA_LOGIT_FLOPS + mask)


def triangular_solve(inputs: list[Any], outputs: list[Any]) -> int:
    """A X = B with A (..., n, n) triangular, B (..., n, k): n (n - 1) / 2 multiply-adds per right-hand
    column (back substitution), plus n divisions per column unless unitriangular (input 4)."""
    n = shape(inputs[0])[-1]
    columns = numel(outputs[0]) // n                                 # batch * k
    unit = len(inputs) > 4 and inputs[4].toIValue() is True
    return columns * (n * (n - 1) // 2 + (0 if unit else n))


def _with_inplace(table: dict[str, Handle]) -> dict[str, Handle]:
    """Add the in-place variant `aten::op_` of every `aten::op`."""
    return {**table, **{f"{k}_": h for k, h in table.items()}}


_ELEMENTWISE_OPS = ["add", "sub", "rsub", "mul", "div", "neg", "reciprocal", "exp", "log", "log1p",
                    "expm1", "sqrt", "rsqrt", "pow", "square", "abs", "sin", "cos", "erf", "sigmoid",
                    "tanh", "relu", "elu", "gelu", "silu", "softplus", "leaky_relu", "clamp",
                    "clamp_min", "clamp_max", "maximum", "minimum", "addcmul", "addcdiv", "log_sigmoid"]
_REDUCTION_OPS = ["sum", "mean", "amax", "amin", "max", "min", "cumsum", "cumprod", "prod"]

HANDLES: dict[str, Handle] = {
    **_with_inplace({f"aten::{op}": elementwise(1) for op in _ELEMENTWISE_OPS}),
    **{f"aten::{op}": reduction(1) for op in _REDUCTION_OPS},
    "aten::linalg_vector_norm": reduction(2),                      # square + sum (one sqrt per row)
    "aten::norm": reduction(2),
    "aten::logsumexp": reduction(LOGSUMEXP_FLOPS),
    "aten::softmax": elementwise(SOFTMAX_FLOPS),
    "aten::_softmax": elementwise(SOFTMAX_FLOPS),
    "aten::log_softmax": elementwise(SOFTMAX_FLOPS),               # max, sub, exp, sum, sub
    "aten::layer_norm": norm(LAYER_NORM_FLOPS, (2, 3)),
    "aten::rms_norm": norm(RMS_NORM_FLOPS, (2,)),
    "aten::linear": contraction(0),
    "aten::matmul": contraction(0),
    "aten::mm": contraction(0),
    "aten::bmm": contraction(0),
    "aten::addmm": contraction(1),
    "aten::baddbmm": contraction(1),
    "aten::einsum": einsum,
    "aten::_convolution": convolution,
    "aten::conv1d": convolution,
    "aten::conv2d": convolution,
    "aten::scaled_dot_product_attention": sdpa,
    "aten::linalg_solve_triangular": triangular_solve,
}

# Ops that do no arithmetic: views and reshapes, copies and assembly, indexing and selection,
# constructors, masks and comparisons, casts, dropout (identity at eval; its training mask multiply is
# not counted), comparison-only selection (argmax, sort, topk) and integer index arithmetic.
ZERO_COST_OPS: frozenset[str] = frozenset(f"aten::{op}" for op in """
    view reshape real numpy_T mT adjoint flatten unflatten squeeze unsqueeze unsqueeze_ permute transpose t expand expand_as
    view_as contiguous select slice narrow unbind split split_with_sizes chunk movedim diagonal unfold
    as_strided alias size numel dim Int Float Bool ScalarImplicit IntImplicit FloatImplicit
    cat stack clone copy_ detach lift_fresh repeat repeat_interleave tile flip roll constant_pad_nd pad
    index index_select gather index_put index_put_ scatter take_along_dim embedding
    zeros ones full empty arange zeros_like ones_like full_like empty_like new_zeros new_ones
    new_full new_empty eye tril triu tril_ triu_ fill_ zero_
    masked_fill masked_fill_ where eq ne lt le gt ge logical_not logical_and logical_or bitwise_not
    bitwise_and bitwise_or __and__ __or__ __not__
    to type_as float long int bool
    dropout dropout_ feature_dropout alpha_dropout
    argmax argmin argsort sort topk floor_divide remainder
""".split())
