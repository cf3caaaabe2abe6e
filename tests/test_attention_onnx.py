"""Every registered attention type exports (dynamo, opset 18, dynamic batch and sequence, padding mask)
and matches ONNX Runtime within 1e-4 at two other sequence lengths and another batch size.

Parametrized over nasgraph.attention.names(): a new type is covered without touching this file.
Types that declare caps.exportable=False (or have no causal form) are skipped with the reason.
"""
from __future__ import annotations

import onnx
import pytest
import torch

from exporters import batch_seq_axes, export_verified, read_metadata
from nasgraph.attention import build, get, names

D_MODEL, N_HEADS, MAX_LEN = 32, 4, 64
EXPORT_SHAPE = (2, 50)                  # (B, T) traced at export
CHECK_SHAPES = [(3, 13), (3, MAX_LEN)]  # other batch, odd and maximal lengths
ATOL = 1e-4

CASES = [pytest.param(name, causal, id=f"{name}-{'causal' if causal else 'full'}")
         for name in names() for causal in (False, True)]


def padded_inputs(B: int, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x: (B, T, D) and a padding mask (B, T) whose rows keep T, T-3, T//2, ... real tokens."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, D_MODEL, generator=gen)                      # (B, T, D)
    lengths = torch.tensor([T, T - 3, T // 2, T - 1][:B]).clamp(min=1)  # (B,)
    mask = torch.arange(T)[None, :] < lengths[:, None]                 # (B, T) bool
    return x, mask


def skip_reason(name: str, causal: bool) -> str | None:
    caps = get(name).caps
    where = get(name).__module__
    if not caps.exportable:
        return f"{name}: caps.exportable=False (declared in {where})"
    if causal and not caps.causal:
        return f"{name}: caps.causal=False, no causal form to export"
    if not caps.exact:
        return f"{name}: caps.exact=False, outputs are random per call so ONNX cannot match"
    return None


@pytest.mark.parametrize("name,causal", CASES)
def test_exports_with_dynamic_axes_and_matches_ort(name, causal, tmp_path):
    reason = skip_reason(name, causal)
    if reason:
        pytest.skip(reason)
    caps = get(name).caps
    torch.manual_seed(0)
    attn = build(name, D_MODEL, N_HEADS, causal=causal,
                 max_len=MAX_LEN if caps.bounded else None).eval()
    example = padded_inputs(*EXPORT_SHAPE, seed=0)
    checks = [padded_inputs(B, T, seed=i + 1) for i, (B, T) in enumerate(CHECK_SHAPES)]

    path, report = export_verified(
        attn, example, tmp_path / f"{name}.onnx", checks, atol=ATOL,
        input_names=["x", "mask"], output_names=["y"], dynamic_axes=batch_seq_axes("x", "mask"),
        axis_max={"seq": MAX_LEN} if caps.bounded else None, opset=18, fallback=False,
        metadata={"attention": name, "causal": str(causal)})

    assert report.ok and len(report.cases) == len(CHECK_SHAPES), report.summary()
    meta = read_metadata(path)
    assert meta["nasgraph.exporter"] == "dynamo" and int(meta["nasgraph.opset"]) >= 18
    assert meta["attention"] == name
    graph = onnx.load(str(path)).graph
    inputs = {i.name: [d.dim_param for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert inputs["x"][:2] == ["batch", "seq"], inputs
    if caps.padding_mask:
        assert inputs["mask"] == ["batch", "seq"], f"mask input missing or static: {inputs}"



class Unpadded(torch.nn.Module):
    """An attention layer called without a padding mask: the unpadded export's form."""

    def __init__(self, attn: torch.nn.Module):
        super().__init__()
        self.attn = attn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, None)                                        # (B, T, D)


@pytest.mark.parametrize("name", names())
def test_unpadded_export_with_fused_attention_matches_ort(name, tmp_path):
    """Without a mask, SDPA calls become com.microsoft.MultiHeadAttention (ORT's flash CPU path);
    every type still matches PyTorch, and softmax takes that fused kernel."""
    from exporters.fused_attention import FLASH, attention_kernels, contrib_translations

    reason = skip_reason(name, False)
    if reason:
        pytest.skip(reason)
    bounded = get(name).caps.bounded
    torch.manual_seed(0)
    layer = Unpadded(build(name, D_MODEL, N_HEADS, max_len=MAX_LEN if bounded else None).eval())
    gen = torch.Generator().manual_seed(1)
    checks = [(torch.randn(B, T, D_MODEL, generator=gen),) for B, T in ((3, 13), (1, MAX_LEN))]
    path, report = export_verified(
        layer, (torch.randn(*EXPORT_SHAPE, D_MODEL, generator=gen),), tmp_path / f"{name}.onnx", checks, atol=ATOL,
        input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch", 1: "seq"}},
        axis_max={"seq": MAX_LEN} if bounded else None, fallback=False, translations=contrib_translations())
    assert report.ok, report.summary()
    if name == "softmax":
        assert list(attention_kernels(path).values()) == [FLASH]
