"""The report of an elastic search (strategy evolution): the Pareto front of the supernet's metric
against predicted latency (or FLOPs), how good the latency predictor is, and how to retrain a point."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.outfile import atomic_write_text
from nasgraph.plotting import finish_plot, plain_ticks, pyplot
from nasgraph.search.elastic_recommend import front_lines
from nasgraph.textfmt import is_fraction
from nasgraph.training.rundir import read_jsonl

AXIS = {"latency_ms": "ONNX Runtime latency (ms; predicted unless marked measured)", "flops": "FLOPs per sequence"}


def plot_front(outcome: dict, out: Path, rec: dict | None = None) -> Path:
    """Every scored sub-network (grey), the Pareto front (line, numbered), the pick (star), the budget,
    and the front points' measured latency (x) where recommendation.json `rec` has it."""
    key, scale = outcome["cost_kind"], 100 if is_fraction(outcome["metric"]) else 1
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter([s[key] for s in outcome["scored"]], [scale * s["score"] for s in outcome["scored"]], s=12,
               color="0.6", label="scored sub-networks")
    front = outcome["front"]
    ax.plot([p[key] for p in front], [scale * p["score"] for p in front], "o--", color="C1", ms=5, lw=1,
            label="Pareto front")
    for p in front:
        ax.annotate(str(p["point"]), (p[key], scale * p["score"]), fontsize=7, xytext=(3, 4),
                    textcoords="offset points")
    pick = [p for p in front if p["pick"]]
    if pick:
        ax.plot(pick[0][key], scale * pick[0]["score"], "*", ms=15, color="C3", label="pick")
    timed = [p for p in (rec or {}).get("front", []) if p.get("latency_ms_measured") is not None]
    if key == "latency_ms" and timed:
        ax.plot([p["latency_ms_measured"] for p in timed], [scale * p[outcome["metric"]] for p in timed], "x",
                color="C0", ms=7, label="front, measured latency")
    limit = (outcome.get("budget") or {}).get(key)
    if limit:
        ax.axvline(limit, color="C3", lw=1, ls=":", label="budget")
    ax.set(xlabel=AXIS[key], ylabel=f"{outcome['metric']}{' (%)' if scale == 100 else ''} (supernet, shared weights)",
           title=f"{outcome['strategy']}: {outcome['metric']} vs {'latency' if key == 'latency_ms' else 'FLOPs'}")
    plain_ticks(ax)
    return finish_plot(fig, out, ax)


def plot_sandwich(run: Path, out: Path) -> Path | None:
    rows = [r for r in read_jsonl(run / "metrics.jsonl") if r.get("split") == "train"] \
        if (run / "metrics.jsonl").exists() else []
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], label="largest: task loss")
    ax.plot([r["step"] for r in rows], [r["kd"] for r in rows], label="smallest + random: distillation KL")
    ax.set(xlabel="step", ylabel="loss", title="sandwich training of the elastic supernet")
    return finish_plot(fig, out, ax)


def write_elastic_report(run: str | Path) -> Path:
    run = Path(run)
    o = json.loads((run / "search.json").read_text())
    m = o["metric"]
    rec = json.loads((run / "recommendation.json").read_text())
    lines = [f"# Elastic search report: {run.name}", "",
             f"Strategy **{o['strategy']}** over d_model {o['space']['d_model']}, n_heads {o['space']['n_heads']}, "
             f"n_layers {o['space']['n_layers']}, per-layer ffn.mult and attention; {len(o['scored'])} sub-networks "
             f"scored in {o['wall_seconds']:.0f} s. Budget: {o['budget'] or 'none'}.", "",
             f"**Pick** (best {m} within the budget): `{o['labels']['subnet'][0]}` -> derived.yaml", "",
             *[f"- {w['message']}" for w in rec["warnings"]], "",
             "## Pareto front", "",
             "Scores are read off the supernet (shared weights) on the search's held-out slice: they rank "
             "sub-networks, they are not what each reaches trained on its own. Retrain a point with "
             "`nasgraph train RUN/front/pointK.yaml --out runs/pK` (or `nasgraph derive RUN --point K -o p.yaml`).",
             "", *front_lines(rec, markdown=True), "",
             "ms pred.: the latency predictor's; ms meas.: the point exported and timed with ONNX Runtime on "
             "this machine (as the predictor's samples). The same front is in recommendation.json.", ""]
    lat = json.loads((run / "latency.json").read_text()) if (run / "latency.json").exists() else None
    if lat and "model" in lat:
        err = lat.get("cv_median_rel_error")
        lines += ["## Latency predictor", "",
                  f"Ridge model fit to {len(lat['samples'])} sub-networks timed with ONNX Runtime on this machine "
                  f"(batch {lat['batch']}, T={lat['seq_len']}, {lat['threads']} thread(s), "
                  f"p{lat.get('percentile', 50):g} of the timed calls); median relative error on held-out "
                  f"sub-networks (5-fold): " + (f"{100 * err:.1f}%" if err is not None else "too few samples"), ""]
    plots = [plot_front(o, run / "front.png", rec), plot_sandwich(run, run / "sandwich.png")]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots if p]
    out = run / "report.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
