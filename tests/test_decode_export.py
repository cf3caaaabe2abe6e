"""Prefill/step ONNX graphs (exporters.decode_export, decode_runtime): ONNX Runtime decoding reproduces
the eager full forward pass for every causal attention type; the metadata alone drives a plain
onnxruntime client (docs/decode_format.md); a diverging export is refused.

Exports are the slow part, so one model with a layer of every decodable type (plus a per-head layer and
grouped-query softmax) is exported once and shared: each type's case checks its own layer's state
tensors after ONNX Runtime decoding against eager decoding, and the model's logits against the full
forward pass.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from exporters.decode_export import decode_skip_reason, export_decode
from exporters.decode_runtime import OrtDecoder, decode_paths
from exporters.errors import ExportError, ParityError
from nasgraph import attention, decoding
from nasgraph.generation import generate
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.spec import load_spec

pytest.importorskip("onnxruntime")

DOC = Path(__file__).resolve().parents[1] / "docs" / "decode_format.md"
CAUSAL = [n for n in attention.names() if attention.get(n).caps.causal]
DECODABLE = [n for n in CAUSAL if attention.get(n).caps.decodable]
HYBRID = "{heads: [{softmax: {n_kv_heads: 1}}, {softmax: {n_kv_heads: 1}}, {sliding_window: {window: 3, sinks: 1}}, gla]}"
MAX_LEN, VOCAB_HI, ATOL = 24, 19, 1e-4
SPEC = """
name: every-type
task: {kind: mqar, max_len: %d, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 2, n_val: 1, n_test: 1}
model:
  d_model: 16
  n_heads: %d
  ffn: {mult: 2}
  layers:
%s
"""


def model_of(path: Path, layers: list[str], seed: int = 0, n_heads: int = 2) -> GraphModule:
    path.write_text(SPEC % (MAX_LEN, n_heads, "\n".join(f"    - attention: {a}" for a in layers)))
    torch.manual_seed(seed)
    return GraphModule(compile_spec(load_spec(path))).eval()


def tokens(B: int, T: int, seed: int) -> torch.Tensor:
    return torch.randint(2, VOCAB_HI, (B, T), generator=torch.Generator().manual_seed(seed))   # (B, T)


def export_and_decode(root: Path, layers: list[str], n_heads: int = 2):
    """(model, folder, decoder, {layer/type: [(state input, close)]}, worst logits diff) of one export,
    decoded on fresh inputs at another batch and length than the export's checks."""
    model = model_of(root / "spec.yaml", layers, n_heads=n_heads)
    checks = [tokens(3, 9, 1), tokens(1, MAX_LEN, 2)]
    (prefill, step), report = export_decode(model, root / "model.onnx", checks, max_len=MAX_LEN,
                                            example=tokens(2, 5, 3))
    assert report.ok and report.max_abs_diff <= ATOL and prefill.is_file() and step.is_file()
    decoder = OrtDecoder(root, threads=1)
    ids = tokens(4, 13, 4)                                                 # prefill 6, then 7 steps
    with torch.no_grad():
        full = model(ids, padded=False).numpy()                            # (B, T, V)
        _, eager = decoding.prefill(model, ids[:, :6])
        for t in range(6, 13):
            _, eager = decoding.step(model, ids[:, t:t + 1], eager, t)
    logits, state = decoder.prefill(ids[:, :6].numpy())                   # (B, 6, V)
    worst = float(np.abs(logits - full[:, :6]).max())
    for t in range(6, 13):
        step_logits, state = decoder.step(ids[:, t:t + 1].numpy(), state, t)  # (B, V)
        worst = max(worst, float(np.abs(step_logits - full[:, t]).max()))
    by_layer: dict[str, list] = {}
    for e, ref in zip(decoder.state_entries, eager, strict=True):
        assert state[e["input"]].shape == tuple(ref.shape), e["input"]
        close = np.allclose(state[e["input"]], ref.numpy(), atol=ATOL, rtol=ATOL)
        by_layer.setdefault(e["layer"] + "/" + e["type"], []).append((e["input"], close))
    return model, root, decoder, by_layer, worst


@pytest.fixture(scope="module")
def hybrid(tmp_path_factory):
    """One layer of four heads: grouped-query softmax (KV cache), a sliding window with a sink, gla."""
    return export_and_decode(tmp_path_factory.mktemp("hybrid"), [HYBRID], n_heads=4)


@pytest.fixture(scope="module")
def every_type(tmp_path_factory):
    """A layer of every decodable type, one export (the slow part: minutes)."""
    return export_and_decode(tmp_path_factory.mktemp("every"), DECODABLE)


def test_onnx_runtime_decoding_of_a_hybrid_layer_matches_the_full_forward(hybrid):
    _, _, _, by_layer, worst = hybrid
    assert worst <= ATOL
    assert sorted(by_layer) == ["L0.attention/gla", "L0.attention/sliding_window", "L0.attention/softmax"]
    assert all(close for tensors in by_layer.values() for _, close in tensors), by_layer


@pytest.mark.slow
@pytest.mark.parametrize("name", CAUSAL)
def test_onnx_runtime_decoding_matches_the_full_forward_for_every_causal_type(name, every_type):
    kind = attention.get(name)
    if not kind.caps.decodable:
        pytest.skip(f"{name} has no decoding form: {kind.caps.decode_note}")
    _, _, _, by_layer, worst = every_type
    mine = {k: v for k, v in by_layer.items() if k.endswith("/" + name)}
    assert mine, f"no state tensors of type {name} in the export"
    assert all(close for tensors in mine.values() for _, close in tensors), mine
    assert worst <= ATOL                                                   # the model's logits, all types


def test_metadata_describes_each_state_tensor(hybrid):
    _, _, decoder, _, _ = hybrid
    layout = decoder.layout
    assert layout["max_len"] == MAX_LEN and (layout["token_input"], layout["position_input"]) == ("tokens", "position")
    by_type: dict[str, list] = {}
    for e in layout["state"]:
        by_type.setdefault(e["type"], []).append(e)
        assert e["output"] == "present." + e["input"].removeprefix("past.") and e["dtype"] == "float32"
    kv = by_type["softmax"]
    assert [e["shape"] for e in kv] == [["batch", 1, "cache", 4]] * 2       # 2 query heads share 1 kv head
    assert all(e["grows"] and e["init"] == "zeros, cache length 0" for e in kv)
    assert sorted(e["shape"][2] for e in by_type["sliding_window"]) == [1, 1, 3, 3]  # sink, window (k and v)
    assert [e["shape"] for e in by_type["gla"]] == [["batch", 1, 4, 4]]
    assert decoder.state_bytes(decoder.init_state(2)) == 4 * 2 * (2 * 3 * 4 + 2 * 1 * 4 + 4 * 4)
    _, state = decoder.prefill(tokens(2, 7, 0).numpy())
    assert decoder.state_bytes(state) == 4 * 2 * (2 * 7 * 4 + 2 * 3 * 4 + 2 * 1 * 4 + 4 * 4)


@pytest.mark.slow
def test_running_sums_start_at_their_recorded_fill(every_type):
    _, _, decoder, _, _ = every_type
    fills = [e["fill"] for e in decoder.layout["state"] if e["type"] == "aft_simple"]
    assert fills == [-1e9, 0.0, 0.0]                                       # the running max starts at "-inf"


def test_steps_from_the_metadata_initial_state_match_prefill(hybrid):
    model, _, decoder, _, _ = hybrid
    ids = tokens(2, 5, 6).numpy()
    prefilled, _ = decoder.prefill(ids)                                    # (B, T, V)
    state = decoder.init_state(2)
    for t in range(5):
        logits, state = decoder.step(ids[:, t:t + 1], state, t)
        assert np.abs(logits - prefilled[:, t]).max() <= ATOL


def test_generation_matches_eager_decoding_past_max_len(hybrid):
    """Greedy and sampled, crossing max_len (the window slides: re-prefilled each token)."""
    model, _, decoder, _, _ = hybrid
    prompt = [3, 5, 7, 9, 4]
    eager = decoding.EagerDecoder(model)
    for options in ({}, {"temperature": 1.0, "top_k": 5, "seed": 3}):
        expected = generate(eager, prompt, MAX_LEN + 4, MAX_LEN, **options)
        assert decoder.generate(prompt, MAX_LEN + 4, **options) == expected


def test_the_documented_plain_onnxruntime_client_runs(hybrid, monkeypatch, capsys):
    model, root, _, _, _ = hybrid
    code = re.search(r"## A plain ONNX Runtime client.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    assert len(code.strip().splitlines()) <= 17
    monkeypatch.chdir(root)
    exec(compile(code, str(DOC), "exec"), {})
    printed = json.loads(capsys.readouterr().out)
    context = [1, 7, 4, 9]
    with torch.no_grad():
        for _ in range(len(printed)):                                      # greedy by full forward passes
            context.append(int(model(torch.tensor([context]), padded=False)[0, -1].argmax()))
    assert printed == context[4:]


def test_prefill_refuses_past_max_len_and_step_past_the_last_position(hybrid):
    _, root, decoder, _, _ = hybrid
    import onnxruntime as ort

    prefill, step = (ort.InferenceSession(str(p)) for p in decode_paths(root))
    with pytest.raises(Exception, match="exceeds the model's max_len"):
        prefill.run(None, {"tokens": tokens(1, MAX_LEN + 1, 0).numpy()})
    feeds = {"tokens": np.array([[3]]), "position": np.array(MAX_LEN), **decoder.init_state(1)}
    with pytest.raises(Exception, match="position outside 0..23"):
        step.run(None, feeds)
    with pytest.raises(ExportError, match="position 24 outside"):
        decoder.step(np.array([[3]]), decoder.init_state(1), MAX_LEN)


def test_a_diverging_step_graph_is_refused_and_nothing_lands(tmp_path, monkeypatch):
    model = model_of(tmp_path / "spec.yaml", ["softmax"])
    real_step = decoding.step

    def off_by_a_bit(*args, **kwargs):
        logits, state = real_step(*args, **kwargs)
        return logits + 1e-2, state

    monkeypatch.setattr(decoding, "step", off_by_a_bit)
    with pytest.raises(ParityError, match=r"decode parity MISMATCH .*steps 4\.\.8 0\.01"):
        export_decode(model, tmp_path / "model.onnx", [tokens(2, 9, 1)], max_len=MAX_LEN)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_which_models_get_decoding_graphs(tmp_path):
    lm = model_of(tmp_path / "a.yaml", ["softmax"])
    assert decode_skip_reason(lm, "token") is None
    assert decode_skip_reason(lm, "token", "never") == ""
    assert decode_skip_reason(lm, "class") == ""
    with pytest.raises(ExportError, match="causal language model"):
        decode_skip_reason(lm, "class", "always")
    without = [n for n in CAUSAL if n not in DECODABLE]
    if without:
        other = model_of(tmp_path / "b.yaml", ["softmax", without[0]])
        assert without[0] in decode_skip_reason(other, "token")
        with pytest.raises(ExportError, match=without[0]):
            decode_skip_reason(other, "token", "always")
    with pytest.raises(ExportError, match="valid: auto, always, never"):
        decode_skip_reason(lm, "token", "sometimes")


def test_a_short_example_still_gives_graphs_for_prompts_of_several_chunks(tmp_path):
    """torch.export fixes a size it sees as 1: traced on fewer tokens than one chunk, the prefill graph
    of a chunked recurrence failed on any longer prompt. The export traces at max_len instead."""
    model = model_of(tmp_path / "spec.yaml", ["{retention: {chunk: 4}}"])
    short = tokens(2, 3, 1)                                                # (2, 3): inside one chunk
    export_decode(model, tmp_path / "model.onnx", [short], max_len=MAX_LEN, example=short)
    ids = tokens(1, 21, 2)                                                 # 6 chunks
    logits, _ = OrtDecoder(tmp_path, threads=1).prefill(ids.numpy())
    with torch.no_grad():
        assert np.abs(logits - model(ids, padded=False).numpy()).max() <= ATOL
