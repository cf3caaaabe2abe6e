"""`nasgraph bench` reports (model and candidate modes) and the latency-aware search with its
measured, cached table."""
from __future__ import annotations

import json
import textwrap

import onnxruntime as ort
import pytest

from deploy_helpers import CHOICE
from exporters.fused_attention import FLASH
from nasgraph.cli import main


def test_bench_model_reports_both_runtimes_and_pareto(deployed, tmp_path):
    _, run, path = deployed
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


def test_the_eager_twin_does_the_work_of_the_graph_ort_runs():
    """bench and deploy_latency time eager on the forward the ORT graph computes: mask-free for a batch
    without padding (the unpadded graph), masked otherwise."""
    import torch

    from exporters.bench_subjects import EagerLogits
    from nasgraph.tasks.base import PAD_ID

    class Recorder(torch.nn.Module):
        def forward(self, tokens, padded=True):
            self.padded = padded
            return tokens.float()

    model = Recorder()
    twin = EagerLogits(model)
    twin(torch.tensor([[PAD_ID + 1, PAD_ID + 2, PAD_ID + 3]]))
    assert model.padded is False
    twin(torch.tensor([[PAD_ID + 1, PAD_ID + 2, PAD_ID]]))
    assert model.padded is True
