"""The exported prefill graph runs every prompt length up to max_len, not only the traced one.

A 4-layer hybrid's prefill graph once failed in ONNX Runtime on a 1024-token prompt ("broadcast 32 by
1024" in a gated_deltanet Mul) although its 12-token parity check passed: traced inside one chunk,
torch.export fixed the chunk count (a size it sees as 1) in the graph. Per decodable causal type (the
registry): export from a 5-token example, then ORT prefill at a single token, inside one chunk or
block, at lengths that are no multiple of any chunk size, and at max_len (several chunks of the
recurrent types' default 32 / 64), against the eager full forward. And the exporter's own probe
refuses a graph that fixed a traced size instead of letting it land.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import exporters.decode_export as decode_export
from exporters.decode_export import export_decode, probe_lengths
from exporters.decode_runtime import OrtDecoder
from exporters.errors import ParityError
from nasgraph import attention
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.spec import load_spec

pytest.importorskip("onnxruntime")

CAUSAL = [n for n in attention.names() if attention.get(n).caps.causal]
MAX_LEN, ATOL = 140, 1e-4
LENGTHS = (1, 6, 37, 101, MAX_LEN)      # one token, inside a chunk, odd lengths, max_len (>= 3 chunks of 64)
SPEC = """
name: lengths
task: {kind: mqar, max_len: %d, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 2, n_val: 1, n_test: 1}
model: {d_model: 16, n_heads: 2, n_layers: 1, attention: %s}
"""


def model_of(folder: Path, attention_type: str) -> GraphModule:
    (folder / "spec.yaml").write_text(SPEC % (MAX_LEN, attention_type))
    torch.manual_seed(0)
    return GraphModule(compile_spec(load_spec(folder / "spec.yaml"))).eval()


def tokens(B: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(2, 19, (B, T), generator=torch.Generator().manual_seed(seed))   # (B, T)


@pytest.mark.slow
@pytest.mark.parametrize("name", CAUSAL)
def test_prefill_graph_runs_prompt_lengths_other_than_the_exports(name, tmp_path):
    kind = attention.get(name)
    if not kind.caps.decodable:
        pytest.skip(f"{name} has no decoding form: {kind.caps.decode_note}")
    model = model_of(tmp_path, name)
    short = tokens(2, 5, 1)                                                # (2, 5) the export's example
    export_decode(model, tmp_path / "model.onnx", [short], max_len=MAX_LEN, example=short)
    decoder = OrtDecoder(tmp_path, threads=1)
    for T in LENGTHS:
        ids = tokens(2, T, T)                                              # (2, T)
        logits, state = decoder.prefill(ids.numpy())                       # (2, T, V)
        with torch.no_grad():
            full = model(ids, padded=False).numpy()                        # (2, T, V)
        assert np.abs(logits - full).max() <= ATOL, (name, T)
        assert all(a.shape[0] == 2 for a in state.values())


def test_hybrid_prefill_runs_prompts_shorter_and_longer_than_the_trace(tmp_path, monkeypatch):
    """softmax + gated_deltanet (the 4-layer hybrid's types), traced at 40 tokens (2 chunks of 32),
    then prompts inside one chunk, odd lengths and past the trace up to max_len."""
    monkeypatch.setattr(decode_export, "TRACE_LEN", 40)
    (tmp_path / "spec.yaml").write_text(SPEC.replace("n_layers: 1, attention: %s", "layers: [{attention: softmax}, "
                                                     "{attention: gated_deltanet}]") % MAX_LEN)
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(tmp_path / "spec.yaml"))).eval()
    _, report = export_decode(model, tmp_path / "model.onnx", [tokens(2, 12, 1)], max_len=MAX_LEN)
    assert "prefill lengths 1,7,21,93 (per unit" in report.summary() and report.ok
    decoder = OrtDecoder(tmp_path, threads=1)
    for T in LENGTHS:
        ids = tokens(1, T, T)                                              # (1, T)
        with torch.no_grad():
            full = model(ids, padded=False).numpy()                        # (1, T, V)
        assert np.abs(decoder.prefill(ids.numpy())[0] - full).max() <= ATOL, T


def test_the_export_refuses_a_graph_that_fixed_a_traced_size(tmp_path, monkeypatch):
    """Traced inside one chunk (3 tokens, chunk 4), the chunk count is fixed at 1: the probe of longer
    prompts fails at export, names the length, and nothing lands. Standard ops: through ORT's
    LinearAttention (contrib ops) the recurrence has no chunks and this graph is right."""
    monkeypatch.setattr(decode_export, "TRACE_LEN", 3)
    model = model_of(tmp_path, "{retention: {chunk: 4}}")
    assert probe_lengths(3, MAX_LEN) == [1, 2, 7, 19]
    with pytest.raises(ParityError, match=r"fails on a 7-token prompt .*3-token trace is fixed in the graph"):
        export_decode(model, tmp_path / "model.onnx", [tokens(2, 3, 1)], max_len=MAX_LEN, contrib_ops=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_probe_lengths_straddle_the_trace_within_max_len():
    assert probe_lengths(1024, 8193) == [1, 7, 513, 2061]
    assert probe_lengths(140, 140) == [1, 7, 71, 140]
    assert probe_lengths(3, 5) == [1, 2, 5]
