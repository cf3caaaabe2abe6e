"""FLOP counting: `count_flops(module, inputs)` and `attention_flops(name, d_model, n_heads, T)`.

Built on fvcore's jit tracing with our own handle table (handles.py), because fvcore counts zero for
ops it does not know (scaled_dot_product_attention among them), approximates einsum and ignores
elementwise ops, softmax and cumsum. Conventions (docs/flops.md):
  - one multiply-add = 1 FLOP (as fvcore); bias adds of linear/addmm/conv are folded in;
  - an elementwise op (add, mul, exp, sigmoid, relu, gelu, ...) = 1 FLOP per output element;
  - a reduction (sum, mean, amax, cumsum) = 1 FLOP per input element;
  - softmax = 5 FLOPs per element (max, subtract, exp, sum, divide);
  - layer_norm = 5 per element (+1 per affine tensor); rms_norm = 3 (+1 for the weight);
  - einsum is exact: two operands cost the product of all index sizes;
  - SDPA = softmax(q k^T * scale + mask) v counted dense: is_causal does NOT halve it;
  - ops with integer/bool outputs and the ops in ZERO_COST_OPS (views, indexing, masks, casts) cost 0;
  - any other op raises UnsupportedOpError naming it: never a silent zero.
"""
from nasgraph.flops.count import FlopReport, UnsupportedOpError, attention_flops, count_flops
from nasgraph.flops.einsum import EinsumError, einsum_macs
from nasgraph.flops.handles import HANDLES, SOFTMAX_FLOPS, ZERO_COST_OPS

__all__ = ["FlopReport", "UnsupportedOpError", "attention_flops", "count_flops", "EinsumError",
           "einsum_macs", "HANDLES", "SOFTMAX_FLOPS", "ZERO_COST_OPS"]
