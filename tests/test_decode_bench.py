"""Decode latency: `nasgraph bench --decode` (rows, state memory, report), the per-token decode cost
table and `objective: latency: {mode: decode, context: C}` (validated at spec load, searched on)."""
from __future__ import annotations

import json
import textwrap

import pytest

from nasgraph.cli import main
from nasgraph.errors import NasgraphError, SpecError
from nasgraph.spec import load_spec

LM = """
name: dec
task: {kind: mqar, max_len: 24, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 64, n_val: 16, n_test: 16}
model: {d_model: 16, n_heads: 2, n_layers: 2, attention: %s}
"""
SEARCH = LM + """
search: {strategy: darts, steps: 2, score_batches: 1, objective: {latency: %s}}
train: {steps: 2, batch_size: 8, eval_every: 2}
"""
FAST = ["--seq", "8", "--contexts", "16,64", "--repeats", "2", "--warmup", "0", "--threads", "1", "--no-progress"]


def write(tmp_path, text: str, name: str = "spec.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_bench_decode_of_a_model_reports_latency_tokens_per_s_and_state(tmp_path, capsys):
    spec = write(tmp_path, LM % "{heads: [softmax, linear]}")
    assert main(["bench", str(spec), "--decode", "--out", str(tmp_path / "b"), *FAST]) == 0
    assert "decode at context 64" in capsys.readouterr().out
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    from exporters.decode_bench import ort_available

    backends = {"torch-eager", "onnxruntime"} if ort_available() else {"torch-eager"}  # + exported prefill/step
    assert {r["backend"] for r in report["rows"]} == backends
    for backend in backends:
        rows = [r for r in report["rows"] if r["backend"] == backend]
        steps = {r["length"]: r for r in rows if r["kind"] == "step"}
        assert set(steps) == {16, 64} and [r["length"] for r in rows if r["kind"] == "prefill"] == [8]
        assert all(r["p50_ms"] > 0 and r["tokens_per_s"] > 0 for r in rows)
        # per layer: softmax head KV cache 2 x (1, 1, C, 8) + linear head (8 x 8 + 8), fp32, 2 layers
        assert [steps[C]["state_bytes"] for C in (16, 64)] == [2 * 4 * (2 * C * 8 + 72) for C in (16, 64)]
    assert (tmp_path / "b" / "decode.png").stat().st_size > 0
    assert "| dec | 64 |" in (tmp_path / "b" / "report.md").read_text()


def test_bench_decode_of_a_spec_times_each_decodable_candidate(tmp_path):
    spec = write(tmp_path, LM % "{candidates: [softmax, gla, cosformer]}")
    assert main(["bench", str(spec), "--decode", "--out", str(tmp_path / "b"), *FAST]) == 0
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert {r["subject"] for r in report["rows"]} == {"softmax", "gla"}
    assert any("cosformer" in n and "no decoding form" in n for n in report["notes"])
    state = {(r["subject"], r["length"]): r["state_bytes"] for r in report["rows"] if r["kind"] == "step"}
    assert state["gla", 16] == state["gla", 64] and state["softmax", 64] == 4 * state["softmax", 16]
    assert [s for s, _, _ in report["ratios"]] == ["softmax", "gla"]


def test_bench_decode_refuses_a_classifier_and_contexts_without_decode(tmp_path, capsys):
    spec = write(tmp_path, "name: c\ntask: {kind: tiny, max_len: 12, n_train: 8, n_val: 8, n_test: 8}\n"
                           "model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}\n")
    assert main(["bench", str(spec), "--decode", "--out", str(tmp_path / "b"), *FAST]) == 2
    assert "causal language model" in capsys.readouterr().err
    assert main(["bench", str(spec), "--out", str(tmp_path / "c"), "--contexts", "16"]) == 2
    assert "--decode" in capsys.readouterr().err


@pytest.mark.parametrize("latency, match", [
    ("{mode: forward, context: 64}", "'context' applies to mode: decode"),
    ("{mode: decoding}", "forward"),
    ("{mode: decode, context: 0}", "greater than 0"),
])
def test_decode_objective_keys_are_validated(tmp_path, latency, match):
    with pytest.raises(SpecError, match=match) as err:
        load_spec(write(tmp_path, SEARCH % ("{candidates: [softmax, linear]}", latency)))
    assert err.value.line is not None


def test_decode_objective_needs_a_causal_model_whose_candidates_decode(tmp_path):
    with pytest.raises(SpecError, match="'cosformer' has no decoding form") as err:
        load_spec(write(tmp_path, SEARCH % ("{candidates: [softmax, cosformer]}", "{mode: decode}")))
    assert "search.objective.latency.mode" in str(err.value)
    classifier = ("name: c\ntask: {kind: tiny, max_len: 12, n_train: 8, n_val: 8, n_test: 8}\n"
                  "model: {d_model: 16, n_heads: 2, n_layers: 1, attention: [softmax, linear]}\n"
                  "search: {objective: {latency: {mode: decode}}}\n")
    with pytest.raises(SpecError, match="per-position task"):
        load_spec(write(tmp_path, classifier, "c.yaml"))
    doc = load_spec(write(tmp_path, SEARCH % ("{candidates: [softmax, linear]}", "{mode: decode, context: 64}")))
    assert doc.spec.search.objective.latency.decode_context == 64


def test_decode_cost_table_is_measured_per_candidate_and_cached(tmp_path, monkeypatch):
    from exporters.decode_cost import decode_cost_table
    from exporters.latency_table import LatencyTable
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize

    monkeypatch.setenv("NASGRAPH_CACHE", str(tmp_path / "cache"))
    spec = write(tmp_path, SEARCH % ("{candidates: [softmax, gla]}", "{mode: decode, context: 64, backend: torch-eager}"))
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    outcome = json.loads((tmp_path / "run" / "search.json").read_text())
    assert outcome["cost_kind"] == "latency" and 0 < outcome["cost_range"][0] <= outcome["cost_range"][1]
    graph = compile_spec(load_spec(spec))
    table = LatencyTable(repeats=3, warmup=0)
    cost = decode_cost_table(summarize(graph), graph, 64, table=table, backend="torch-eager")  # from the search's cache
    assert table.misses == 0 and table.hits == 2 * 2 + 1                 # 2 layers x 2 candidates + shared
    assert all(len(v) == 2 and min(v) > 0 for v in cost.per_node.values()) and cost.shared > 0
    stored = json.loads(next((tmp_path / "cache" / "latency").glob("*.json")).read_text())["entries"]
    decode_keys = [json.loads(k) for k in stored if '"decode"' in k]
    assert {k["candidate"] for k in decode_keys} == {"softmax", "gla"}
    assert all(k["seq_len"] == 64 and k["backend"] == "torch-eager" for k in decode_keys)


def test_decode_cost_from_onnx_runtime_times_the_exported_step_of_each_candidate(tmp_path, monkeypatch):
    """The default decode backend: a candidate's decoding step exported, checked against eager's step and
    timed in ONNX Runtime; eager stays selectable; both cached apart. A diverging graph is refused."""
    pytest.importorskip("onnxruntime")
    import exporters.decode_cost as decode_cost
    from exporters.errors import ParityError
    from exporters.latency_table import LatencyTable

    table = LatencyTable(tmp_path / "table.json", threads=1, repeats=3, warmup=0)
    assert decode_cost.decode_ms(table, "softmax", d_model=16, n_heads=2, context=32) > 0
    assert decode_cost.decode_ms(table, "softmax", d_model=16, n_heads=2, context=32, backend="torch-eager") > 0
    assert table.misses == 2 and decode_cost.decode_ms(table, "softmax", d_model=16, n_heads=2, context=32) > 0
    assert table.hits == 1
    stored = [json.loads(k) for k in json.loads((tmp_path / "table.json").read_text())["entries"]]
    assert sorted(k["backend"] for k in stored) == ["onnxruntime", "torch-eager"]
    assert all(k["candidate"] == "softmax" and k["seq_len"] == 32 for k in stored)
    traced = decode_cost.export_step
    monkeypatch.setattr(decode_cost, "export_step", lambda layer, *a: (traced(layer, *a),
                                                                       layer.out_proj.bias.data.add_(0.1))[0])
    with pytest.raises(ParityError, match="decode step of linear: ONNX Runtime differs from eager by 0.1"):
        decode_cost.decode_ms(table, "linear", d_model=16, n_heads=2, context=8)
    with pytest.raises(NasgraphError, match="valid: onnxruntime, torch-eager"):
        decode_cost.decode_ms(table, "linear", d_model=16, n_heads=2, context=8, backend="ort")


def test_decode_backend_is_checked_at_spec_load(tmp_path):
    with pytest.raises(SpecError, match="backend 'torch-eager' applies to mode: decode"):
        load_spec(write(tmp_path, SEARCH % ("{candidates: [softmax, linear]}", "{backend: torch-eager}")))
    doc = load_spec(write(tmp_path, SEARCH % ("{candidates: [softmax, linear]}", "{mode: decode, backend: torch-eager}")))
    assert doc.spec.search.objective.latency.backend == "torch-eager"


@pytest.mark.parametrize("contexts", ["99999999999", "3000000"])
def test_bench_decode_refuses_a_length_past_the_limits(contexts, tmp_path, capsys):
    """A huge --contexts used to allocate the position table (RuntimeError traceback) or run for hours."""
    spec = write(tmp_path, LM % "softmax")
    argv = ["bench", str(spec), "--decode", "--out", str(tmp_path / "b"), "--seq", "8", "--contexts", contexts]
    assert main([*argv, "--repeats", "1", "--warmup", "0", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "--seq / --contexts up to " in err and "use shorter lengths" in err, err
    assert len(err.strip().splitlines()) == 1, err
