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
so mask-free softmax has no other export path.

A causal self-attention call (is_causal=True, no mask, no dropout, fp32, q/k/v of one length and head
size: the `softmax` type without padding) becomes one `com.microsoft.GroupQueryAttention` (causal,
(B, H) folded into its batch with one head, so no transposes; seqlens_k = T - 1 and the total length
from q's shape, no past; present K/V written and unused) where onnxruntime has its CPU kernel with the
`causal` attribute (1.32). Read in group_query_attention.cc / gqa_attention_base.h: fp32 without
softcap, smooth softmax, head sink or qk output takes ApplyAttentionFlash (MLAS online-softmax
tiles, memory linear in T: +16 MB at T=6144 against 624 MB for causal=0, which is quadratic in 1.32);
`local_window_size` = w gives each query its last w keys (self included), measured exact. Measured
(benchmarks/deploy_causal_attention.py, 4 heads of 32, 1 thread, CPU ms, 2026-12-01 13:35 UTC, load
1.4-2.4): T=2048 GQA 75.5, decomposed causal 102, masked decomposed 93; torch SDPA is_causal 14.3,
with the additive mask 51.2. T=512: 5.3 / 5.7 / 5.3 and 1.6 / 2.5. So GQA is ORT's fastest causal
path (0.74x the decomposition at 2048, linear memory) but 5x torch's causal kernel, which skips the
future blocks; 1.32's causal flash gains nothing from the triangle (82 ms against MultiHeadAttention's
non-causal 24 ms at the same shape, /tmp probe, same run).
Block-causal calls (the `local` type's blocks of 32) measured 1.08-1.15x the decomposition through
GQA, so `local` keeps its mask. Every other call (a padding bias, dropout, enable_gqa, cross
lengths) keeps torchlib's decomposition (MatMul, Add, Softmax, MatMul: the B x H x T x T scores are
materialised). The transposes around the MHA node cancel against the model's own head split in ORT's
optimiser.

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

from exporters.runtime import has_cpu_kernel

MSFT = "com.microsoft"
KERNELS_KEY = "nasgraph.attention_kernels"  # metadata: {attention module: kernel path}, JSON
FLASH = "MultiHeadAttention (flash, tiled)"
CAUSAL_FLASH = "GroupQueryAttention (causal, flash, tiled)"
GQA_QUADRATIC = "GroupQueryAttention (not causal: scores materialised)"
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


def _gqa_op():
    """onnxscript Op for com.microsoft.GroupQueryAttention: q, k, v, (no past), seqlens_k, total length;
    the present key/value outputs are declared (ORT's flash path writes them)."""
    from onnxscript.values import Op, Opset

    S = onnx.defs.OpSchema
    optional = S.FormalParameterOption.Optional
    inputs = [S.FormalParameter(n, t, param_option=optional if n.startswith("past") else S.FormalParameterOption.Single)
              for n, t in (("query", "T"), ("key", "T"), ("value", "T"), ("past_key", "T"), ("past_value", "T"),
                           ("seqlens_k", "M"), ("total_sequence_length", "M"))]
    schema = S("GroupQueryAttention", MSFT, 1, inputs=inputs,
               outputs=[S.FormalParameter(n, "T") for n in ("output", "present_key", "present_value")],
               type_constraints=[("T", ["tensor(float)"], "fp32: the CPU flash path's type"),
                                 ("M", ["tensor(int32)"], "lengths")],
               attributes=[S.Attribute("num_heads", S.AttrType.INT, "q heads", required=True),
                           S.Attribute("kv_num_heads", S.AttrType.INT, "k/v heads", required=True),
                           S.Attribute("scale", S.AttrType.FLOAT, "softmax scale", required=False)])
    return Op(Opset(MSFT, 1), "GroupQueryAttention", schema)


def ort_has_causal_gqa() -> bool:
    """Whether the installed onnxruntime has a CPU kernel for com.microsoft.GroupQueryAttention with the
    `causal` attribute (1.32: its causal prefill runs the tiled MLAS flash kernel)."""
    return has_cpu_kernel("GroupQueryAttention", MSFT, attribute="causal")


def _static(dim) -> bool:
    return isinstance(dim, int) and not isinstance(dim, bool)


def contrib_translations() -> dict[Callable, Callable]:
    """{aten.scaled_dot_product_attention: translation} for torch.onnx.export(custom_translation_table=)."""
    import torch
    from onnx import TensorProto
    from onnxscript import opset18 as op
    from onnxscript.function_libs.torch_lib.ops.nn import aten_scaled_dot_product_attention as decomposed

    mha, gqa = _mha_op(), _gqa_op()

    def causal(query, key, value, scale):
        """GroupQueryAttention, causal, (B, H) folded into its batch with one head: no transposes."""
        ints = lambda *v: op.Constant(value_ints=list(v))  # noqa: E731
        flat = op.Concat(ints(-1), op.Shape(query, start=2), axis=0)                 # [-1, T, dh]
        q, k, v = (op.Reshape(t, flat) for t in (query, key, value))                 # (B*H, T, dh)
        shape = op.Shape(q)                                                          # [B*H, T, dh]
        T = op.Slice(shape, ints(1), ints(2))                                        # (1,) int64
        total = op.Cast(op.Squeeze(T), to=TensorProto.INT32)                         # () = T
        last = op.Expand(op.Sub(T, ints(1)), op.Slice(shape, ints(0), ints(1)))      # (B*H,) = T - 1
        seqlens_k = op.Cast(last, to=TensorProto.INT32)
        out, _, _ = gqa(q, k, v, None, None, seqlens_k, total,
                        num_heads=1, kv_num_heads=1, scale=scale)                    # (B*H, T, dh)
        return op.Reshape(out, op.Shape(query))                                      # (B, H, T, dh)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
        q_shape, k_shape, v_shape = query.shape, key.shape, value.shape
        plain = (attn_mask is None and not dropout_p and not enable_gqa and query.dtype == TensorProto.FLOAT
                 and len(q_shape) == 4 and len(k_shape) == 4 and len(v_shape) == 4 and _static(q_shape[3])
                 and q_shape[3] == k_shape[3])
        if plain and is_causal and ort_has_causal_gqa() and v_shape[3] == q_shape[3] and q_shape[2] == k_shape[2] \
                and all(q_shape[i] == s[i] for s in (k_shape, v_shape) for i in (0, 1)):
            return causal(query, key, value, float(scale if scale is not None else q_shape[3] ** -0.5))
        fusable = (plain and not is_causal and all(_static(s[i]) for s in (q_shape, k_shape, v_shape) for i in (1, 3))
                   and q_shape[1] == k_shape[1] == v_shape[1])
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


def _gqa_path(node: onnx.NodeProto) -> str:
    causal = all(a.i for a in node.attribute if a.name == "causal")  # default 1
    return CAUSAL_FLASH if causal else GQA_QUADRATIC


def attention_kernels(path: str | os.PathLike) -> dict[str, str]:
    """{attention module path: kernel path of its softmax} of an exported .onnx (read from node metadata).

    Paths: FLASH (com.microsoft.MultiHeadAttention without mask on fp32: ORT's tiled CPU kernel),
    CAUSAL_FLASH (com.microsoft.GroupQueryAttention, causal), MHA_QUADRATIC, GQA_QUADRATIC, DECOMPOSED (Softmax over materialised scores) or NO_SOFTMAX (linear-cost types);
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
                else _gqa_path(node) if node.domain == MSFT and node.op_type == "GroupQueryAttention"
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
