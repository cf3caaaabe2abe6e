"""Causal softmax without padding exports as ORT's causal GroupQueryAttention (exporters.fused_attention),
matches PyTorch, and `attention_kernels` says so; a padded causal call keeps the decomposition."""
from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F

from exporters.attention_check import ATOL, EXPORT_SHAPE
from exporters.fast_ops import export_translations
from exporters.fused_attention import CAUSAL_FLASH, DECOMPOSED, attention_kernels, contrib_translations, ort_has_causal_gqa
from exporters.parity import export_verified
from nasgraph.attention.contract import LONGEST, D, build

pytestmark = pytest.mark.skipif(not ort_has_causal_gqa(), reason="onnxruntime has no causal GroupQueryAttention CPU kernel")


class Layer(torch.nn.Module):
    """An attention layer on x (B, T, D), with a padding mask when `padded` (the last 3 positions of row 0)."""

    def __init__(self, attn: torch.nn.Module, padded: bool = False):
        super().__init__()
        self.attn, self.padded = attn, padded

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.padded:
            return self.attn(x, None)                                           # (B, T, D)
        mask = torch.ones(x.shape[:2], dtype=torch.bool)                      # (B, T)
        mask[0, -3:] = False
        return self.attn(x, mask)                                               # (B, T, D)


def _export(layer: torch.nn.Module, tmp_path, name: str):
    gen = torch.Generator().manual_seed(2)
    checks = [(torch.randn(B, T, D, generator=gen),) for B, T in ((3, 13), (1, LONGEST), (2, 1))]
    return export_verified(layer, (torch.randn(*EXPORT_SHAPE, D, generator=gen),), tmp_path / f"{name}.onnx", checks,
                           atol=ATOL, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "seq"}},
                           fallback=False, translations=export_translations())


@pytest.mark.parametrize("options", [{}, {"n_kv_heads": 2}, {"short_conv": 4}], ids=["mha", "kv2", "conv"])
def test_causal_softmax_without_padding_takes_causal_gqa(options, tmp_path):
    path, report = _export(Layer(build("softmax", causal=True, **options).eval()), tmp_path, "causal")
    assert report.ok, report.summary()
    assert list(attention_kernels(path).values()) == [CAUSAL_FLASH]
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ops.count("GroupQueryAttention") == 1 and "Softmax" not in ops and "Trilu" not in ops


def test_padded_causal_softmax_keeps_the_decomposition(tmp_path):
    path, report = _export(Layer(build("softmax", causal=True).eval(), padded=True), tmp_path, "padded")
    assert report.ok, report.summary()
    assert list(attention_kernels(path).values()) == [DECOMPOSED]


class Core(torch.nn.Module):
    """SDPA on x split into q, k, v (B, H, T, dh); `case` picks the call."""

    def __init__(self, case: str):
        super().__init__()
        self.case = case

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = x.unflatten(-1, (3, 2, -1)).permute(2, 0, 3, 1, 4)             # (3, B, 2, T, dh)
        if self.case == "scale":
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)  # (B, 2, T, dh)
        if self.case == "cross":                                                # 8 fixed keys: not self-attention
            return F.scaled_dot_product_attention(q, k[:, :, :8], v[:, :, :8], is_causal=True)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)          # (B, 2, T, dh)


@pytest.mark.parametrize("case,gqa", [("plain", True), ("scale", True), ("cross", False)])
def test_translation_of_is_causal_calls(case, gqa, tmp_path):
    """An explicit scale is kept; a call whose keys are not the queries' positions stays decomposed."""
    gen = torch.Generator().manual_seed(3)
    checks = [(torch.randn(B, T, 48, generator=gen),) for B, T in ((2, 9), (1, 40))]
    path, report = export_verified(Core(case), (torch.randn(2, 20, 48, generator=gen),), tmp_path / "core.onnx", checks,
                                   atol=ATOL, input_names=["x"], output_names=["y"],
                                   dynamic_axes={"x": {0: "batch", 1: "seq"}}, fallback=False,
                                   translations=contrib_translations())
    assert report.ok, report.summary()
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert ("GroupQueryAttention" in ops) == gqa and ("Softmax" in ops) != gqa


@pytest.mark.parametrize("block", [0, 16])
def test_causal_benchmark_paths_match_eager(block, tmp_path):
    """benchmarks/deploy_causal_attention.py: the GQA, decomposed and mask exports of a causal core (full, or
    in blocks with a partial last block) compute eager's causal attention."""
    import numpy as np

    from benchmarks.deploy_causal_attention import CausalCore, export
    from exporters.runtime import make_session

    x = torch.randn(1, 40, 3 * 2 * 8, generator=torch.Generator().manual_seed(4))   # (1, T, 3 H dh)
    with torch.no_grad():
        ref = CausalCore(2, block)(x).numpy()                                          # (1, T, H dh)
        assert np.abs(CausalCore(2, block, mask=True)(x).numpy() - ref).max() < 1e-6
    for name, core, fused in (("gqa", CausalCore(2, block), True), ("dec", CausalCore(2, block), False),
                              ("mask", CausalCore(2, block, mask=True), True)):
        path = export(core, 8, 24, tmp_path / f"{name}.onnx", fused)
        out = make_session(path, threads=1).run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(out, ref, atol=1e-5)
        ops = [n.op_type for n in onnx.load(str(path)).graph.node]
        assert ("GroupQueryAttention" in ops) == (name == "gqa")


@pytest.mark.parametrize("spec", ["lm_bytes", "mqar"])
def test_causal_example_specs_derive_for_the_deploy_benchmark(spec):
    """deploy_latency.py's causal example specs: every candidate derives at a raised max_len, causal."""
    from benchmarks.deploy_latency import SPECS, derived_models

    seen = {label: model for label, _, model in derived_models(spec, 96)}
    assert spec in SPECS and set(seen) == {"softmax", "linear", "local(window=32)"}
    assert all(m.ctx.max_len == 96 for m in seen.values())
