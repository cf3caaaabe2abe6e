"""The elastic search's recommendation: recommendation.json holds the Pareto front (dimensions, metric,
predicted and measured latency, FLOPs, params, derived spec), report.md and the terminal show it."""
from __future__ import annotations

import json

import pytest

from nasgraph.cli import main
from nasgraph.graph.subnet import SubNet
from nasgraph.search.elastic_recommend import elastic_recommendation, front_lines
from tests.test_elastic import ELASTIC

CANDS = [["softmax", "linear"]] * 2


def outcome(front_subs: list[SubNet]) -> dict:
    front = [{"point": k, "subnet": s.to_json(), "label": s.label(CANDS), "score": 0.5 + 0.1 * k, "latency_ms": 0.2 * (k + 1),
              "flops": 1000.0 * (k + 1), "params": 100.0 * (k + 1), "pick": k == len(front_subs) - 1}
             for k, s in enumerate(front_subs)]
    return {"strategy": "evolution", "metric": "acc", "cost_kind": "latency_ms", "budget": {"latency_ms": 1.0},
            "seeds": [0], "front": front, "scored": front * 3, "labels": {"subnet": [front[-1]["label"]]}}


def test_recommendation_record_has_every_front_field():
    subs = [SubNet(16, 2, (1.0,), (1,)), SubNet(32, 4, (2.0, 1.0), (0, 1))]
    latency = {"model": {}, "samples": [{}] * 12, "cv_median_rel_error": 0.25, "batch": 1, "seq_len": 12,
               "threads": 1, "percentile": 10}
    rec = elastic_recommendation(outcome(subs), CANDS, latency, {1: 0.45})
    assert rec["elastic"] and len(rec["front"]) == 2 and rec["pick"]["point"] == 1
    p0, p1 = rec["front"]
    assert p1["dims"] == {"d_model": 32, "n_heads": 4, "n_layers": 2, "ffn_mult": [2.0, 1.0],
                          "attention": ["softmax", "linear"]}
    assert p0["dims"]["attention"] == ["linear"]
    assert (p1["acc"], p1["latency_ms_predicted"], p1["latency_ms_measured"]) == (0.6, 0.4, 0.45)
    assert p0["latency_ms_measured"] is None          # not timed: shown as such, never invented
    assert (p1["flops"], p1["params"], p1["spec"]) == (2000.0, 200.0, "front/point1.yaml")
    assert "pick `d32 h4 L2" in rec["headline"] and "2 point(s) over 6 scored" in rec["headline"]
    codes = [w["code"] for w in rec["warnings"]]
    assert codes == ["shared-weights", "latency-predictor"] and "25.0%" in rec["warnings"][1]["message"]
    text = "\n".join(front_lines(rec))
    assert "0.450" in text and "0.400" in text and "front/point0.yaml" in text


def test_a_good_predictor_gets_no_latency_warning():
    latency = {"model": {}, "samples": [{}] * 12, "cv_median_rel_error": 0.05, "batch": 1, "seq_len": 12,
               "threads": 1}
    rec = elastic_recommendation(outcome([SubNet(16, 2, (1.0,), (0,))]), CANDS, latency, {})
    assert [w["code"] for w in rec["warnings"]] == ["shared-weights"]
    assert rec["latency_predictor"]["samples"] == 12


def test_search_writes_the_front_with_measured_latency(write_spec, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    spec = write_spec(ELASTIC % {"ffn": "", "search": ""}, "e.yaml")
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress", "--set", "search.latency_samples=4",
                 "--set", "search.budget={latency_ms: 1000}"]) == 0
    terminal = capsys.readouterr().out
    rec = json.loads((run / "recommendation.json").read_text())
    outcome = json.loads((run / "search.json").read_text())
    assert rec["elastic"] and len(rec["front"]) == len(outcome["front"]) >= 1
    for p in rec["front"]:
        assert set(p["dims"]) == {"d_model", "n_heads", "n_layers", "ffn_mult", "attention"}
        assert p["latency_ms_measured"] > 0 and p["latency_ms_predicted"] > 0 and p["flops"] > 0 and p["params"] > 0
        assert (run / p["spec"]).exists() and isinstance(p[rec["metric"]], float)
    assert sum(p["pick"] for p in rec["front"]) == 1
    assert rec["latency_predictor"]["samples"] == 4
    report = (run / "report.md").read_text()
    assert "ms meas." in report and f"{rec['front'][0]['latency_ms_measured']:.3f}" in report
    assert (run / "front.png").exists()
    assert "Pareto front" in terminal and "ms meas." in terminal and "recommendation.json" in terminal
