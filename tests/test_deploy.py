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
from exporters.fused_attention import DECOMPOSED, FLASH, NO_SOFTMAX, attention_kernels
from exporters.model_export import unpadded_path
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


def unpadded_batch(B: int, T: int) -> torch.Tensor:
    """Real validation examples of at least T tokens, cut to T: a batch without padding (B, T)."""
    from nasgraph import tasks

    split = tasks.load_task(tasks.parse_task(yaml.safe_load(TASK)["task"])).splits["val"]
    rows = [ids[:T] for ids in split.ids if len(ids) >= T][:B]
    assert len(rows) == B, f"the tiny task has fewer than {B} validation examples of {T} tokens"
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


def test_unpadded_graph_matches_and_takes_the_fused_kernel(trained):
    """The mask-free graph beside the model: same outputs on batches without padding, ORT's flash
    MultiHeadAttention for the softmax heads, and a clear failure on padding."""
    from nasgraph.training.run import load_trained

    _, run, path = trained
    unpadded = unpadded_path(path)
    meta = read_metadata(unpadded)
    assert meta["nasgraph.padding"] == "none" and read_metadata(path)["nasgraph.unpadded_variant"] == unpadded.name
    assert float(meta["nasgraph.parity_max_abs_diff"]) <= 1e-4 and "the longest alone" in meta["nasgraph.parity_inputs"]
    padded_kernels, unpadded_kernels = attention_kernels(path), attention_kernels(unpadded)
    assert unpadded_kernels == {"model.nodes.L0__attention.inner": f"{FLASH} + {DECOMPOSED}",  # softmax + local heads
                                "model.nodes.L1__attention.inner": NO_SOFTMAX}, unpadded_kernels
    assert padded_kernels["model.nodes.L0__attention.inner"] == DECOMPOSED
    assert json.loads(meta["nasgraph.attention_kernels"]) == unpadded_kernels           # recorded in each file
    assert json.loads(read_metadata(path)["nasgraph.attention_kernels"]) == padded_kernels
    _, model = load_trained(run)
    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in (path, unpadded)]
    for B, T in ((1, 12), (3, 5)):
        tokens = unpadded_batch(B, T)
        with torch.no_grad():
            expected = model(tokens).numpy()
        for session in sessions:
            np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)
    with pytest.raises(Exception, match="padding"):
        sessions[1].run(None, {"tokens": val_batch(2, 12).numpy() * 0})


def test_predict_picks_the_unpadded_graph_for_batches_without_padding(trained):
    _, _, path = trained
    p = Predictor(path)
    unpadded, padded = unpadded_batch(2, 5).numpy(), val_batch(4, 12).numpy()
    assert (unpadded != 0).all() and (padded == 0).any()
    both = p.logits(unpadded)
    assert p.last_graph == "unpadded"
    p.logits(padded)
    assert p.last_graph == "padded"
    only_padded = Predictor(path)
    del only_padded.sessions["unpadded"]
    np.testing.assert_allclose(only_padded.logits(unpadded), both, atol=1e-5)
    assert only_padded.last_graph == "padded"
    # given the unpadded file alone, rows with padding run in groups of equal length
    alone = Predictor(unpadded_path(path))
    np.testing.assert_allclose(alone.logits(padded), p.logits(padded), atol=1e-5)
    assert alone.last_graph == "unpadded-by-length"


def test_export_takes_the_best_validation_checkpoint_and_says_which(trained, tmp_path, capsys):
    import shutil

    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec, trained_run, path = trained
    vals = [json.loads(l) for l in (trained_run / "metrics.jsonl").read_text().splitlines()]
    vals = [v for v in vals if v.get("split") == "val"]
    best_step = max(vals, key=lambda v: v["acc"])["step"]  # the first of equal maxima
    assert torch.load(trained_run / "checkpoints" / "best.pt", weights_only=True)["step"] == best_step
    assert read_metadata(path)["nasgraph.checkpoint"].startswith(f"best validation checkpoint (step {best_step},")
    # a run whose best weights differ from its last ones: each choice exports its own weights
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    torch.manual_seed(123)
    _, other = build_discrete(load_spec(spec))
    torch.save({"model": other.state_dict(), "step": 1, "val": {"acc": 0.99}}, run / "checkpoints" / "best.pt")
    _, last = build_discrete(load_spec(spec))
    last.load_state_dict(torch.load(run / "checkpoints" / "last.pt", weights_only=False)["model"])
    tokens = val_batch(3, 9)
    for argv, model, said in ((["--weights", "best"], other, "best validation checkpoint (step 1, val acc 0.9900)"),
                              (["--weights", "last"], last, "last checkpoint")):
        out = tmp_path / f"{argv[1]}.onnx"
        assert main(["export", str(run), "-o", str(out), *argv]) == 0
        assert f"weights: {said}" in capsys.readouterr().out
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        with torch.no_grad():
            expected = model.eval()(tokens).numpy()
        np.testing.assert_allclose(session.run(None, {"tokens": tokens.numpy()})[0], expected, atol=1e-4)
    (run / "checkpoints" / "best.pt").unlink()  # a run trained before best.pt existed
    assert main(["export", str(run), "-o", str(tmp_path / "old.onnx")]) == 0
    assert "weights: last checkpoint (this run has no checkpoints/best.pt" in capsys.readouterr().out


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


def test_int8_export_records_the_measured_accuracy_change(trained, tmp_path, capsys):
    _, run, path = trained
    out = tmp_path / "int8.onnx"
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8", "--max-accuracy-drop", "100",
                 "--no-progress"]) == 0
    assert "int8: test accuracy" in capsys.readouterr().out
    for graph in (out, unpadded_path(out)):
        q = json.loads(read_metadata(graph)["nasgraph.quantization"])
        assert q["mode"] == "int8" and q["split"] == "test" and q["examples"] == 64
        assert q["drop_points"] == pytest.approx((q["fp32_acc"] - q["int8_acc"]) * 100)
        assert q["int8_bytes"] < q["fp32_bytes"]
        ops = {n.op_type for n in onnx.load(str(graph)).graph.node}
        assert {"MatMulInteger", "DynamicQuantizeLinear"} <= ops
    # the fp32 accuracy is the trained model's own test accuracy (measured again, with ONNX Runtime)
    assert q["fp32_acc"] == pytest.approx(json.loads((run / "result.json").read_text())["test"]["acc"], abs=1 / 64)
    tokens = unpadded_batch(3, 6).numpy()
    padded, unpadded = (ort.InferenceSession(str(g), providers=["CPUExecutionProvider"]) for g in (out, unpadded_path(out)))
    np.testing.assert_allclose(padded.run(None, {"tokens": tokens})[0], unpadded.run(None, {"tokens": tokens})[0], atol=1e-2)


def test_int8_export_is_refused_beyond_the_tolerance(trained, tmp_path, monkeypatch, capsys):
    """The int8 graph's measured accuracy, lowered by 5 points: over a 1-point tolerance, nothing lands."""
    import exporters.quantize as quantize

    measured = quantize.onnx_accuracy

    def five_points_lower_for_int8(path, split, **kw):
        acc, n = measured(path, split, **kw)
        return (acc - 0.05, n) if str(path).endswith(".int8.onnx") else (acc, n)

    monkeypatch.setattr(quantize, "onnx_accuracy", five_points_lower_for_int8)
    _, run, _ = trained
    out = tmp_path / "out" / "m.onnx"
    out.parent.mkdir()
    assert main(["export", str(run), "-o", str(out), "--quantize", "int8", "--max-accuracy-drop", "1"]) == 2
    err = capsys.readouterr().err
    assert "int8 export refused" in err and "drop 5.00 points (limit 1)" in err
    assert list(out.parent.iterdir()) == []  # neither graph, no staging folder


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
    # a raw ONNX Runtime session (no Python check in front) refuses it inside the graph, both graphs
    for graph in (path, unpadded_path(path)):
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert session.run(None, {"tokens": np.full((1, 12), 2, dtype=np.int64)})[0].shape == (1, 2)
        with pytest.raises(Exception, match="sequence length exceeds the model's max_len 12"):
            session.run(None, {"tokens": np.full((1, 13), 2, dtype=np.int64)})


def test_unbounded_model_without_positions_enforces_max_len_in_the_graph(tmp_path):
    """No position table and unbounded attention: ONNX Runtime used to run such inputs silently."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    spec = tmp_path / "one.yaml"
    spec.write_text(textwrap.dedent(ONE_LAYER).replace("attention: softmax", "attention: linear, position: none"))
    _, model = build_discrete(load_spec(spec))
    torch.save({"model": model.state_dict()}, tmp_path / "last.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(spec), "--checkpoint", str(tmp_path / "last.pt"), "-o", str(out)]) == 0
    for graph in (out, unpadded_path(out)):
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        with pytest.raises(Exception, match="max_len 12"):
            session.run(None, {"tokens": np.full((2, 40), 2, dtype=np.int64)})


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
    assert {r["graph"] for r in report["rows"]} == {"unpadded"}  # random tokens have no padding
    assert FLASH in report["subjects"][0]["attention_kernels"]["unpadded"]["model.nodes.L0__attention.inner"]
    assert report["skipped"] == ["tiny-hetero: T=64 > max_len 12"]
    assert report["env"]["onnxruntime"] == ort.__version__ and report["env"]["cpu"]
    assert "the source run" in report["subjects"][0]["note"]
    (point,) = report["runs"]
    assert point["acc"] == json.loads((run / "result.json").read_text())["test"]["acc"] and point["pareto"]
    assert point["flops"] > 0 and point["latency_p50_ms"] > 0
    md = (out / "report.md").read_text()
    assert "| ORT/eager |" in md and "pareto.png" in md and "attention kernels, unpadded graph" in md
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
