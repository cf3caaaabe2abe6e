"""Deploy side on the tiny task: verified export with metadata, predict, bench reports, latency-aware search.

Exports are the slow part (a few seconds each): one trained run and its export are shared by the
module; the other tests export only what they are about.
"""
from __future__ import annotations

import json
import textwrap

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import yaml

from exporters.errors import ProviderError
from exporters.predict import Predictor, read_inputs
from exporters.runtime import read_metadata
from nasgraph.cli import main
from nasgraph.errors import SequenceTooLongError

TASK = "task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}"
HETERO = f"""
name: tiny-hetero
{TASK}
model:
  d_model: 16
  n_heads: 2
  n_layers: 2
  ffn: {{mult: 2}}
  layers:
    - attention: {{heads: [softmax, {{local: {{window: 4}}}}]}}
    - attention: linear
train: {{steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}}
"""
CHOICE = f"""
name: tiny-choice
{TASK}
model:
  d_model: 16
  n_heads: 2
  n_layers: 1
  ffn: {{mult: 2}}
  attention: {{granularity: head, candidates: [softmax, linear]}}
search: {{strategy: darts, seeds: [0], steps: 4, objective: {{latency: {{weight: 1.0}}}}}}
train: {{steps: 4, batch_size: 16, eval_every: 4, checkpoint_every: 4}}
"""
ONE_LAYER = f"""
name: one-layer
{TASK}
model: {{d_model: 8, n_heads: 1, n_layers: 1, ffn: {{mult: 1}}, attention: softmax}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(spec, run folder, model.onnx) of a trained per-head (heterogeneous) derived model."""
    root = tmp_path_factory.mktemp("deploy")
    spec = root / "derived.yaml"
    spec.write_text(textwrap.dedent(HETERO))
    run = root / "run"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    onnx_path = root / "model.onnx"
    assert main(["export", str(run), "-o", str(onnx_path)]) == 0
    return spec, run, onnx_path


def val_batch(B: int, T: int) -> torch.Tensor:
    """Real validation examples of the tiny task, padded to T (B, T)."""
    from nasgraph import tasks

    split = tasks.load_task(tasks.parse_task(yaml.safe_load(TASK)["task"])).splits["val"]
    rows = [ids[:T] + [0] * (T - len(ids[:T])) for ids in split.ids[:B]]
    return torch.tensor(rows)


# -- export -----------------------------------------------------------------------------------------
def test_export_carries_metadata_and_matches_ort(trained):
    from nasgraph.training.run import load_trained

    spec, run, path = trained
    meta = read_metadata(path)
    derived = yaml.safe_load(meta["nasgraph.spec"])
    assert derived["model"]["layers"][0]["attention"]["heads"] == ["softmax", {"local": {"window": 4}}]
    task = json.loads((run / "task.json").read_text())
    assert json.loads(meta["nasgraph.tokenizer"]) == task["tokenizer"]
    assert json.loads(meta["nasgraph.vocab"]) == task["vocab"]
    assert json.loads(meta["nasgraph.class_names"]) == ["0", "1"] and meta["nasgraph.max_len"] == "12"
    assert meta["nasgraph.exporter"] == "dynamo" and meta["nasgraph.version"]
    assert float(meta["nasgraph.parity_max_abs_diff"]) <= float(meta["nasgraph.parity_atol"]) == 1e-4
    assert "val: 4 shortest padded to T=" in meta["nasgraph.parity_inputs"]
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["tokens"] and [o.name for o in graph.output] == ["logits"]
    assert [d.dim_param for d in graph.input[0].type.tensor_type.shape.dim] == ["batch", "seq"]
    _, model = load_trained(run)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for B, T in ((5, 9), (1, 12)):
        tokens = val_batch(B, T)
        with torch.no_grad():
            expected = model(tokens).numpy()
        np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)


def test_export_refuses_to_overwrite(trained, tmp_path, capsys):
    _, run, _ = trained
    out = tmp_path / "model.onnx"
    out.write_text("precious")
    assert main(["export", str(run), "-o", str(out)]) == 2
    assert out.read_text() == "precious" and "--force" in capsys.readouterr().err


def test_parity_failure_refuses_with_numbers_and_leaves_no_file(tmp_path, capsys):
    """A spec + checkpoint export (one small layer, untrained weights) held to an impossible tolerance."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec = tmp_path / "one.yaml"
    spec.write_text(textwrap.dedent(ONE_LAYER))
    _, model = build_discrete(load_spec(spec))
    torch.save({"model": model.state_dict()}, tmp_path / "last.pt")
    out = tmp_path / "out" / "model.onnx"
    out.parent.mkdir()
    argv = ["export", str(spec), "--checkpoint", str(tmp_path / "last.pt"), "-o", str(out), "--atol", "1e-12"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "parity MISMATCH (atol 1e-12" in err and "[4x12] max_abs_diff=" in err
    assert list(out.parent.iterdir()) == []  # no model, no staging folder


def test_checkpoint_of_another_model_is_refused(trained, tmp_path, capsys):
    spec, run, _ = trained
    argv = ["export", str(spec), "--checkpoint", str(run / "checkpoints" / "last.pt"), "-o",
            str(tmp_path / "m.onnx"), "--set", "model.d_model=32"]
    assert main(argv) == 2
    assert "does not fit the spec's model" in capsys.readouterr().err


# -- predict ----------------------------------------------------------------------------------------
def test_predictor_agrees_with_torch(trained):
    from nasgraph.tasks.tokenize import Tokenizer
    from nasgraph.training.run import load_trained

    _, run, path = trained
    texts = ["a b c", "b b b b a c d", "e"]
    predictions = Predictor(path).predict(texts)
    _, model = load_trained(run)
    tok = Tokenizer.from_dict(json.loads((run / "task.json").read_text())["tokenizer"])
    for text, (label, probs) in zip(texts, predictions):
        with torch.no_grad():
            p = torch.softmax(model(torch.tensor([tok.encode(text)])), -1)[0]
        assert label == str(int(p.argmax())) and list(probs) == ["0", "1"]
        np.testing.assert_allclose(list(probs.values()), p.numpy(), atol=1e-5)


def test_predict_text_lines_and_tsv(trained, tmp_path, capsys):
    _, _, path = trained
    assert main(["predict", str(path), "a b c d"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].split("\t")[0] in ("0", "1") and "a b c d" in out[0]
    lines = tmp_path / "texts.txt"
    lines.write_text("a b c\n\nb b b a\n")
    assert main(["predict", str(path), str(lines), "--json"]) == 0
    records = [json.loads(l) for l in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in records] == ["a b c", "", "b b b a"]      # the blank line keeps its place
    assert records[1]["label"] is None and [r["line"] for r in records] == [1, 2, 3]
    records = records[::2]
    assert all(abs(sum(r["probs"].values()) - 1) < 1e-6 and r["label"] in r["probs"] for r in records)
    tsv = tmp_path / "data.tsv"
    tsv.write_text("Source\tTarget\na b c\t1\nb c d e\t0\n")
    assert read_inputs(str(tsv), ["0", "1"]).targets == ["1", "0"]
    assert main(["predict", str(path), str(tsv)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and out[-1].startswith("accuracy ") and "/2)" in out[-1]


def test_predict_truncates_to_max_len_and_refuses_longer_tokens(trained, capsys):
    _, _, path = trained
    p = Predictor(path)
    long_text = " ".join("abcdef"[i % 6] for i in range(40))
    truncated = " ".join(long_text.split()[:11])  # <cls> + 11 symbols = max_len 12
    assert p.predict([long_text]) == p.predict([truncated])
    assert p.truncated([long_text, truncated]) == [True, False]
    assert main(["predict", str(path), long_text]) == 0
    assert "warning: 1 of 1 input(s) had more than max_len 12 tokens" in capsys.readouterr().err
    assert main(["predict", str(path), long_text, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["truncated"] is True and json.loads(err)["summary"]["truncated"] == 1
    with pytest.raises(SequenceTooLongError, match="13 exceeds the model's max_len 12"):
        p.logits(np.full((1, 13), 2))
    # what ONNX Runtime itself does past max_len: the learned position table cannot broadcast
    with pytest.raises(Exception, match="broadcast"):
        p.session.run(None, {"tokens": np.full((1, 13), 2, dtype=np.int64)})


def test_predict_top_k(trained, capsys):
    _, _, path = trained
    assert main(["predict", str(path), "a b c", "--top-k", "1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["top_k"] == [{"label": record["label"], "prob": max(record["probs"].values())}]
    assert main(["predict", str(path), "a b c", "--top-k", "1"]) == 0
    label, shown, _ = capsys.readouterr().out.split("\t")
    assert shown.count(":") == 1 and shown.startswith(label + ":")
    assert main(["predict", str(path), "a b c", "--top-k", "0"]) == 2


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_provider_actually_used_is_asserted(trained, monkeypatch, capsys):
    _, _, path = trained
    assert main(["predict", str(path), "a b", "--provider", "cuda"]) == 2
    assert "CUDAExecutionProvider" in capsys.readouterr().err
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort.InferenceSession, "get_providers", lambda self: ["CPUExecutionProvider"])
    with pytest.raises(ProviderError, match="fell back to CPUExecutionProvider"):
        Predictor(path, "cuda")


# -- bench ------------------------------------------------------------------------------------------
def test_bench_model_reports_both_runtimes_and_pareto(trained, tmp_path):
    _, run, path = trained
    out = tmp_path / "bench"
    argv = ["bench", str(path), "--out", str(out), "--batch", "1,2", "--seq", "6,12,64", "--repeats", "3",
            "--warmup", "1", "--threads", "1", "--runs", str(run), "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "report.json").read_text())
    points = {(r["batch"], r["seq_len"], r["backend"]) for r in report["rows"]}
    assert points == {(B, T, b) for B in (1, 2) for T in (6, 12) for b in ("onnxruntime", "torch-eager")}
    assert all(r["threads"] == 1 and r["p50_ms"] > 0 and r["repeats"] == 3 for r in report["rows"])
    assert {r["graph_opt"] for r in report["rows"]} == {"all", "eager"}
    assert report["skipped"] == ["tiny-hetero: T=64 > max_len 12"]
    assert report["env"]["onnxruntime"] == ort.__version__ and report["env"]["cpu"]
    assert "the source run" in report["subjects"][0]["note"]
    (point,) = report["runs"]
    assert point["acc"] == json.loads((run / "result.json").read_text())["test"]["acc"] and point["pareto"]
    assert point["flops"] > 0 and point["latency_p50_ms"] > 0
    md = (out / "report.md").read_text()
    assert "| ORT/eager |" in md and "pareto.png" in md
    for png in ("latency_vs_seq.png", "pareto.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    assert main(argv) == 2  # a second bench into the same folder is refused


def test_bench_spec_times_every_candidate_layer(tmp_path):
    spec = tmp_path / "choice.yaml"
    spec.write_text(textwrap.dedent(CHOICE))
    out = tmp_path / "bench"
    assert main(["bench", str(spec), "--out", str(out), "--seq", "16", "--repeats", "2", "--warmup", "0",
                 "--threads", "1", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == "candidates"
    assert {(r["subject"], r["backend"]) for r in report["rows"]} == {
        (s, b) for s in ("softmax", "linear") for b in ("onnxruntime", "torch-eager")}


# -- latency-aware search ---------------------------------------------------------------------------
def test_latency_objective_search_uses_measured_cached_table(tmp_path, monkeypatch):
    from exporters.latency_table import LatencyTable, latency_cost_table
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize
    from nasgraph.spec import load_spec

    monkeypatch.setenv("NASGRAPH_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "choice.yaml"
    spec.write_text(textwrap.dedent(CHOICE))
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    outcome = json.loads((tmp_path / "run" / "search.json").read_text())
    assert outcome["cost_kind"] == "latency"
    low, high = outcome["cost_range"]
    assert 0 < low <= outcome["cost"] <= high

    (cache,) = (tmp_path / "cache" / "latency").glob("*.json")
    stored = json.loads(cache.read_text())
    assert stored["fingerprint"]["onnxruntime"] == ort.__version__
    entries = {json.loads(k)["candidate"] if "candidate" in k else "shared": v for k, v in stored["entries"].items()}
    assert set(entries) == {"softmax", "linear", "shared"} and all(v["p50_ms"] > 0 for v in entries.values())

    doc = load_spec(spec)
    graph = compile_spec(doc)
    table = LatencyTable()
    cost = latency_cost_table(summarize(graph), graph, table=table)  # second call: every number from the cache
    assert table.misses == 0 and table.hits == 3  # 2 candidates + the shared part
    assert cost.kind == "latency" and cost.granularity["L0.attention"] == "head"
    assert cost.per_node["L0.attention"] == pytest.approx([entries["softmax"]["p50_ms"] * 1e3,
                                                           entries["linear"]["p50_ms"] * 1e3])
    assert cost.shared == pytest.approx(entries["shared"]["p50_ms"] * 1e3)
    assert [low, high] == pytest.approx([cost.min_total, cost.max_total])
