"""Softmax attention through ONNX Runtime's fused kernel, and which kernel each attention layer gets.

`contrib_translations()` is a torch.onnx custom translation of `aten.scaled_dot_product_attention`:
a call without mask, not causal, without dropout, on fp32 with static head counts becomes one
`com.microsoft.MultiHeadAttention` node (q, k, v as (B, S, H*dh), no bias, no key_padding_mask).
That is the form ORT's CPU kernel runs on its flash path (MLAS, tiled over L2, memory linear in T;
read in onnxruntime/contrib_ops/cpu/bert/multihead_attention.cc: fp32, no mask, no attention bias,
not unidirectional, no past/present, q/k/v not in BNSH layout; the q/k/v `bias` input is allowed,
measured at the same cost). The kernel works on blocks of Br = min(Bc, dqk + dv) query rows (32 at
head size 16) by Bc = L2 / (16 (dqk + dv)) keys, capped at T, with no minimum length or head size;
at T=2048, 4 heads of 16, 1 thread it takes the CPU time of torch's SDPA kernel (16.4 vs 16.0 ms,
2026-11-30; 0.89-0.96x at T=2048 on 2026-12-01), so it brings parity with eager, not a margin.
Query-block-tiled graphs (MatMul, Softmax, MatMul per block of 32-512 rows) and q/k zero-padding
(bigger MLAS blocks) measured 1.10-1.77x its time at T=2048 (benchmarks/deploy_tiled_attention.py),
so mask-free softmax has no other export path. Every other call (a padding or
causal bias, dropout, GQA) keeps torchlib's decomposition (MatMul, Add, Softmax, MatMul: the B x H x
T x T scores are materialised). The transposes around the node cancel against the model's own
head split in ORT's optimiser.

`attention_kernels(path)` reads an exported file and says, per attention module, which path its
softmax takes, from the exporter's node metadata (module scopes).

Example:
    >>> export_onnx(model, (x,), "m.onnx", translations=contrib_translations())
    >>> attention_kernels("m.onnx")
    {'nodes.layers_0__attn.inner': 'MultiHeadAttention (flash, tiled)'}
"""
from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import Callable

import onnx

MSFT = "com.microsoft"
KERNELS_KEY = "nasgraph.attention_kernels"  # metadata: {attention module: kernel path}, JSON
FLASH = "MultiHeadAttention (flash, tiled)"
MHA_QUADRATIC = "MultiHeadAttention (mask: scores materialised)"
DECOMPOSED = "MatMul+Softmax+MatMul (scores materialised)"
NO_SOFTMAX = "matmuls only (no softmax over positions)"

def _is_attention_class(cls) -> bool:
    """nasgraph attention modules: the types (nasgraph.attention.*), and the attention op with its
    per-head / mixed wrappers (nasgraph.ops.*Attention*)."""
    if not isinstance(cls, str):
        return False
    module, _, name = cls.rpartition(".")
    return (module.startswith("nasgraph.attention.") and not module.rsplit(".", 1)[-1].startswith("_")) or \
        (module.startswith("nasgraph.ops.") and "Attention" in name)


def _mha_op():
    """onnxscript Op for com.microsoft.MultiHeadAttention (ORT's schema is not in onnx's registry)."""
    from onnxscript.values import Op, Opset

    S = onnx.defs.OpSchema
    optional = S.FormalParameterOption.Optional
    schema = S("MultiHeadAttention", MSFT, 1,
               inputs=[S.FormalParameter("query", "T"), S.FormalParameter("key", "T", param_option=optional),
                       S.FormalParameter("value", "T", param_option=optional)],
               outputs=[S.FormalParameter("output", "T")],
               type_constraints=[("T", ["tensor(float)"], "fp32: the CPU flash path's only type")],
               attributes=[S.Attribute("num_heads", S.AttrType.INT, "heads", required=True),
                           S.Attribute("scale", S.AttrType.FLOAT, "softmax scale", required=False)])
    return Op(Opset(MSFT, 1), "MultiHeadAttention", schema)


def _static(dim) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool)


def contrib_translations() -> dict[Callable, Callable]:
    """{aten.scaled_dot_product_attention: translation} for torch.onnx.export(custom_translation_table=)."""
    import torch
    from onnx import TensorProto
    from onnxscript import opset18 as op
    from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention as decomposed

    mha = _mha_op()

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        q_shape, k_shape, v_shape = query.shape, key.shape, value.shape
        fusable = (attn_mask is None and not is_causal and not dropout_p and not enable_gqa
                   and query.dtype == TensorProto.FLOAT and len(q_shape) == 4 and len(k_shape) == 4
                   and len(v_shape) == 4 and all(_static(s[i]) for s in (q_shape, k_shape, v_shape) for i in (1, 3))
                   and q_shape[1] == k_shape[1] == v_shape[1] and q_shape[3] == k_shape[3])
        if not fusable:
            return decomposed(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        heads, dh, dv = q_shape[1], q_shape[3], v_shape[3]
        flat = op.Constant(value_ints=[0, 0, -1])
        packed = [op.Reshape(op.Transpose(t, perm=[0, 2, 1, 3]), flat) for t in (query, key, value)]  # (B, S, H*d)
        out = mha(*packed, num_heads=heads, scale=float(scale if scale is not None else dh ** -0.5))  # (B, S, H*dv)
        out = op.Reshape(out, op.Constant(value_ints=[0, 0, heads, dv]))                            # (B, S, H, dv)
        return op.Transpose(out, perm=[0, 2, 1, 3])                                                 # (B, H, S, dv)

    return {torch.ops.aten.scaled_dot_product_attention.default: sdpa}


def _attention_scope(node: onnx.NodeProto) -> str | None:
    """The module path of the nasgraph attention module a node was exported from (None: outside one)."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
        scopes = ast.literal_eval(meta.get("pkg.torch.onnx.name_scopes", "[]"))
    except (ValueError, SyntaxError):
        return None
    found = None
    for cls, scope in zip(classes, scopes):
        if _is_attention_class(cls):
            found = scope  # the innermost attention module (per-head types run inside their layer's)
    return found


def _mha_path(node: onnx.NodeProto) -> str:
    inputs = list(node.input) + [""] * 10
    masked = any(inputs[i] for i in (3, 4, 5))  # bias, key_padding_mask, attention_bias
    causal = any(a.name == "unidirectional" and a.i for a in node.attribute)
    return MHA_QUADRATIC if masked or causal else FLASH


def attention_kernels(path: str | os.PathLike) -> dict[str, str]:
    """{attention module path: kernel path of its softmax} of an exported .onnx (read from node metadata).

    Paths: FLASH (com.microsoft.MultiHeadAttention without mask on fp32: ORT's tiled CPU kernel),
    MHA_QUADRATIC, DECOMPOSED (Softmax over materialised scores) or NO_SOFTMAX (linear-cost types);
    a module with several kinds lists each once, joined by " + ".
    """
    model = onnx.load(str(path), load_external_data=False)
    found: dict[str, list[str]] = {}
    for node in model.graph.node:
        scope = _attention_scope(node)
        if scope is None:
            continue
        kinds = found.setdefault(scope, [])
        kind = (_mha_path(node) if node.domain == MSFT and node.op_type == "MultiHeadAttention"
                else DECOMPOSED if node.op_type == "Softmax" else None)
        if kind and kind not in kinds:
            kinds.append(kind)
    return {scope: " + ".join(kinds) or NO_SOFTMAX for scope, kinds in found.items()}


def record_kernels(*paths: str | os.PathLike) -> None:
    """Write each file's `attention_kernels` into its metadata (KERNELS_KEY, as JSON)."""
    import json

    from exporters.parity import stamp

    for path in paths:
        stamp(Path(path), {KERNELS_KEY: json.dumps(attention_kernels(path), sort_keys=True)})
