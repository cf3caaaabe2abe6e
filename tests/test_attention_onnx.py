"""Every registered attention type exports (dynamo, opset 18, dynamic batch and sequence, padding mask)
and matches ONNX Runtime within 1e-4 at two other sequence lengths and another batch size.

Parametrized over nasgraph.attention.names(): a new type is covered without touching this file. The
check is exporters.attention_check (also run by `nasgraph check-attention`); types that declare
caps.exportable=False (or caps.exact=False) are skipped with the reason.
"""
from __future__ import annotations

import pytest

from exporters.attention_check import ONNX_CHECK, export_and_parity
from nasgraph.attention import names
from nasgraph.attention.contract import Skipped, forms

CASES = [pytest.param(name, causal, id=f"{name}-{'causal' if causal else 'full'}")
         for name in names() for causal in forms(name, ONNX_CHECK)]


@pytest.mark.parametrize("name,causal", CASES)
def test_exports_with_dynamic_axes_and_matches_ort(name, causal, tmp_path):
    try:
        ONNX_CHECK.run(name, causal, tmp_path)
    except Skipped as why:
        pytest.skip(str(why))


@pytest.mark.parametrize("name,options", [("softmax", {"n_kv_heads": 2}),
                                          ("sliding_window", {"window": 8, "sinks": 3})])
def test_option_paths_export_too(name, options, tmp_path):
    """Options that change the exported graph: grouped-query heads, sink keys (causal form)."""
    export_and_parity(name, True, tmp_path, **options)
