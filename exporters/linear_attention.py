"""The causal linear recurrences through ONNX Runtime's LinearAttention kernel.

`linear_attention_translations()` translates `nasgraph::linear_recurrence` (nasgraph/attention/_ort_linear.py)
into one `com.microsoft.LinearAttention` node, scale 1.0 (our q reads the state unscaled), with the
update rule of the layer: deltanet "delta", gated_deltanet "gated_delta" (q, k L2-normalised before it,
as the op does not normalise), retention and ssd "gated" with a decay per head (B, T, H), gla "gated"
with a decay per key dim (B, T, H*dk), the causal feature-map types (linear, cosformer) "linear" on
[phi(q), phi(k), [v, 1]], divided by the last output column. SSD's q, k are one head shared by all
(q_num_heads 1: ORT's "inverse GQA"). It is empty when the installed onnxruntime has no CPU kernel for
the op (checked once), and then the layers keep the chunked decomposition, as standard-ops exports
(contrib_ops=False) do. `exporting_with(translations)` turns the layers' use of the op on exactly when
the translation table holds it. The decode graphs (exporters/decode_export.py) use it too: the prefill,
and the step of the five recurrent types, past state in, present state out.

Measured 2026-12-01 (onnxruntime 1.32, one layer, d_model 256, 4 heads, 1 thread, CPU ms, all variants
interleaved, load ~3.3; benchmarks/attention_blocks_ab.py NAME,NAME+ort 1024,8192 6), ORT chunked form
-> LinearAttention at T=1024 / 8192: retention 11.6 -> 8.8 / 91 -> 74, gla 34 -> 11 / 298 -> 102,
ssd 18.7 -> 9.5 / 177 -> 68, deltanet 16.0 -> 12.4 / 137 -> 97, gated_deltanet 20.1 -> 12.8 / 144
-> 103, causal linear 12.1 -> 11.6 / 86 -> 90 (no gain: its chunked form is a few matmuls). Decode
steps 1.0-1.16x, prefill up to 2.4x (gla). Details: benchmarks/deploy_latency_findings.md.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator, Mapping

import onnx

from exporters.runtime import has_cpu_kernel

MSFT = "com.microsoft"


def ort_has_linear_attention() -> bool:
    """Whether the installed onnxruntime has a CPU kernel for com.microsoft.LinearAttention."""
    return has_cpu_kernel("LinearAttention", MSFT)


def _linear_attention_op():
    """onnxscript Op for com.microsoft.LinearAttention (ORT's schema is not in onnx's registry)."""
    from onnxscript.values import Op, Opset

    S = onnx.defs.OpSchema
    optional = S.FormalParameterOption.Optional
    names = ("query", "key", "value", "past_state", "decay", "beta")
    schema = S("LinearAttention", MSFT, 1,
               inputs=[S.FormalParameter(n, "T", param_option=optional if i > 2 else S.FormalParameterOption.Single)
                       for i, n in enumerate(names)],
               outputs=[S.FormalParameter("output", "T"), S.FormalParameter("present_state", "T")],
               type_constraints=[("T", ["tensor(float)"], "fp32")],
               attributes=[S.Attribute("q_num_heads", S.AttrType.INT, "query heads", required=True),
                           S.Attribute("kv_num_heads", S.AttrType.INT, "key/value heads", required=True),
                           S.Attribute("update_rule", S.AttrType.STRING, "recurrence", required=True),
                           S.Attribute("scale", S.AttrType.FLOAT, "query scale", required=False)])
    return Op(Opset(MSFT, 1), "LinearAttention", schema)


def linear_attention_translations() -> dict[Callable, Callable]:
    """{nasgraph::linear_recurrence: one com.microsoft.LinearAttention node}; {} without the kernel."""
    if not ort_has_linear_attention():
        return {}
    import torch

    import nasgraph.attention._ort_linear  # noqa: F401 (registers the op)

    op_la = _linear_attention_op()

    def linear_recurrence(q, k, v, state, g, beta, rule: str):
        H, dk = state.shape[1], state.shape[2]                          # static: the layer's sizes
        return op_la(q, k, v, state, g, beta, q_num_heads=q.shape[-1] // dk, kv_num_heads=H,
                     update_rule=rule, scale=1.0, _num_outputs=2)

    return {torch.ops.nasgraph.linear_recurrence.default: linear_recurrence}


@contextlib.contextmanager
def exporting_with(translations: Mapping | None) -> Iterator[None]:
    """Within: the recurrent layers emit `linear_recurrence` iff `translations` translates it."""
    import torch

    from nasgraph.attention._ort_linear import fused_recurrence

    key = torch.ops.nasgraph.linear_recurrence.default
    with fused_recurrence(bool(translations) and key in translations):
        yield
