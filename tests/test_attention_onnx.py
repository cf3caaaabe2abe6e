"""Every registered attention type exports (dynamo, opset 18, dynamic batch and sequence, padding mask)
and matches ONNX Runtime within 1e-4 at two other sequence lengths and another batch size.

Parametrized over nasgraph.attention.names(): a new type is covered without touching this file. The
check is exporters.attention_check (also run by `nasgraph check-attention`); types that declare
caps.exportable=False (or caps.exact=False) are skipped with the reason.
"""
from __future__ import annotations

import onnx
import pytest
import torch

from exporters.attention_check import ATOL, EXPORT_SHAPE, ONNX_CHECK, export_and_parity, skip_reason
from exporters.fast_ops import export_translations
from exporters.fused_attention import FLASH, attention_kernels
from exporters.parity import export_verified
from nasgraph.attention import get, names
from nasgraph.attention.contract import LONGEST, D, Skipped, build, forms

CASES = [pytest.param(name, causal, id=f"{name}-{'causal' if causal else 'full'}")
         for name in names() for causal in forms(name, ONNX_CHECK)]


@pytest.mark.parametrize("name,causal", CASES)
def test_exports_with_dynamic_axes_and_matches_ort(name, causal, tmp_path):
    try:
        ONNX_CHECK.run(name, causal, tmp_path)
    except Skipped as why:
        pytest.skip(str(why))


@pytest.mark.parametrize("name,options", [("softmax", {"n_kv_heads": 2}), ("softmax", {"short_conv": 4}),
                                          ("sliding_window", {"window": 8, "sinks": 3}),
                                          ("ssd", {"short_conv": 4}), ("gated_deltanet", {"short_conv": 4})])
def test_option_paths_export_too(name, options, tmp_path):
    """Options that change the exported graph: grouped-query heads, sink keys, the short convolution
    of softmax and of the recurrent types (causal form)."""
    export_and_parity(name, True, tmp_path, **options)


class Unpadded(torch.nn.Module):
    """An attention layer called without a padding mask: the unpadded export's form."""

    def __init__(self, attn: torch.nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, None)                                        # (B, T, D)


@pytest.mark.parametrize("name", names())
def test_unpadded_export_with_fused_attention_matches_ort(name, tmp_path):
    """Without a mask, SDPA calls become com.microsoft.MultiHeadAttention (ORT's flash CPU path) and
    elu its vectorised form (the model export's translations); every type still matches PyTorch,
    softmax takes the fused kernel with no key/value head copies around it, and no graph keeps
    the scalar Elu kernel."""
    reason = skip_reason(name, False)
    if reason:
        pytest.skip(reason)
    layer = Unpadded(build(name).eval())
    gen = torch.Generator().manual_seed(1)
    checks = [(torch.randn(B, T, D, generator=gen),) for B, T in ((3, 13), (1, LONGEST))]
    path, report = export_verified(
        layer, (torch.randn(*EXPORT_SHAPE, D, generator=gen),), tmp_path / f"{name}.onnx", checks, atol=ATOL,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "seq"}},
        axis_max={"seq": LONGEST} if get(name).caps.bounded else None, fallback=False,
        translations=export_translations())
    assert report.ok, report.summary()
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert "Elu" not in ops
    if name == "softmax":
        assert list(attention_kernels(path).values()) == [FLASH]
        assert "Expand" not in ops  # no repeat_interleave of key/value heads when there is no grouping


class Elu(torch.nn.Module):
    def __init__(self, alpha: float):
        super().__init__()
        self.alpha = alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.elu(x, self.alpha) + 1.0               # (B, T, D)


@pytest.mark.parametrize("alpha,kernel", [(1.0, "Exp"), (0.5, "Elu")])
def test_elu_translation_is_exact_and_keeps_other_alphas(alpha, kernel, tmp_path):
    """alpha 1 (linear attention's feature map) runs as Relu + Exp(Min); other alphas keep Elu."""
    x = torch.linspace(-30, 30, 2 * 7 * D).reshape(2, 7, D)             # both branches, saturation
    path, report = export_verified(Elu(alpha), (x,), tmp_path / "elu.onnx", [(x,), (x[:1, :3] * 0.01,)], atol=1e-6,
                                   input_names=["x"], dynamic_axes={"x": {0: "batch", 1: "seq"}},
                                   translations=export_translations(contrib_ops=False), fallback=False)
    assert report.ok, report.summary()
    assert kernel in {node.op_type for node in onnx.load(str(path)).graph.node}
