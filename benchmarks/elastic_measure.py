"""Measurements of benchmarks/elastic_search.py: the pick and the hand-written spec timed side by side,
per-seed paired differences combined, the latency predictor on the search's front points."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from exporters.subnet_latency import export_subnet, time_onnx


def over_seeds(diffs: list[tuple[float, float]]) -> tuple[float, float, int]:
    """Mean of per-seed paired differences (same test examples every seed) and its error: the larger of
    the evaluation noise and, with 2+ seeds, the spread over seeds (as paired_over_seeds)."""
    s = len(diffs)
    mean = sum(d for d, _ in diffs) / s
    noise = (sum(se ** 2 for _, se in diffs) ** 0.5) / s
    spread = (sum((d - mean) ** 2 for d, _ in diffs) / (s - 1) / s) ** 0.5 if s > 1 else 0.0
    return mean, max(noise, spread), s


def side_by_side(models: list, seq_len: int, rounds: int = 3) -> list[float]:
    """ONNX Runtime ms of each model, timed in turn `rounds` times (the median of its rounds): under a
    changing load, latencies taken apart in time do not compare."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = [export_subnet(m, Path(tmp) / f"m{i}.onnx") for i, m in enumerate(models)]
        times = [[float(np.percentile(time_onnx(p, m.ctx.vocab_size, batch=1, seq_len=seq_len), 10)) for p, m in
                  zip(paths, models)] for _ in range(rounds)]
    return [float(np.median(col)) for col in zip(*times)]


def predictor_check(run: Path, front: list[dict]) -> dict:
    """The latency predictor on the front points it was not fit to (each exported and timed by the search)."""
    lat = json.loads((run / "latency.json").read_text())
    fitted = {json.dumps(x["subnet"], sort_keys=True) for x in lat["samples"]}
    subnets = {p["point"]: q["subnet"] for p, q in zip(front, json.loads((run / "search.json").read_text())["front"])}
    held = [{"subnet": p["label"], "ms": p["latency_ms_measured"], "predicted": p["latency_ms_predicted"]}
            for p in front if json.dumps(subnets[p["point"]], sort_keys=True) not in fitted]
    errors = sorted(abs(h["predicted"] - h["ms"]) / h["ms"] for h in held)
    return {"fit_samples": len(lat["samples"]), "cv_median_rel_error": lat["cv_median_rel_error"],
            "loo_median_rel_error": lat["model"].get("loo_median_rel_error"), "held_out": held,
            "median_rel_error": errors[len(errors) // 2] if len(errors) % 2 else
            (sum(errors[len(errors) // 2 - 1:len(errors) // 2 + 1]) / 2 if errors else None)}
