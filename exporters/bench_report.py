"""Write a bench report: report.json (every row, numbers as numbers), report.md, PNG plots."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.outfile import atomic_write_text
from nasgraph.plotting import pyplot, finish_plot, plain_ticks
from nasgraph.textfmt import human, table

ORT, EAGER = "onnxruntime", "torch-eager"


def paired(rows: list[dict]) -> list[dict]:
    """One record per (subject, batch, seq_len) with the ORT and eager rows side by side."""
    out: dict[tuple, dict] = {}
    for r in rows:
        key = (r["subject"], r["batch"], r["seq_len"])
        out.setdefault(key, {"subject": key[0], "batch": key[1], "seq_len": key[2]})[r["backend"]] = r
    return list(out.values())


MARKERS = "osD^vP*Xph"


def plot_latency(report: dict, path: Path) -> Path:
    """p50 latency against sequence length, a panel per batch: one colour family per runtime (ORT blues,
    eager oranges; ORT solid, eager dashed), one marker per subject."""
    plt = pyplot()
    batches = sorted({r["batch"] for r in report["rows"]})
    fig, axes = plt.subplots(1, len(batches), figsize=(5.2 * len(batches), 3.8), squeeze=False)
    subjects = list(dict.fromkeys(r["subject"] for r in report["rows"]))
    shades = [0.85 - 0.5 * i / max(1, len(subjects) - 1) for i in range(len(subjects))]
    runtimes = ((ORT, "ORT", plt.get_cmap("Blues"), "-"), (EAGER, "eager", plt.get_cmap("Oranges"), "--"))
    for ax, B in zip(axes[0], batches):
        for i, s in enumerate(subjects):
            for backend, short, cmap, style in runtimes:
                pts = sorted((r["seq_len"], r["p50_ms"]) for r in report["rows"]
                             if r["subject"] == s and r["batch"] == B and r["backend"] == backend)
                if pts:
                    ax.plot(*zip(*pts), style, marker=MARKERS[i % len(MARKERS)], ms=4, color=cmap(shades[i]),
                            label=f"{s} ({short})")
        ax.set(xscale="log", yscale="log", xlabel="sequence length (tokens)", ylabel="p50 latency (ms)",
               title=f"batch {B}, {report['settings']['threads']} threads")
        lens = sorted({r["seq_len"] for r in report["rows"] if r["batch"] == B})
        plain_ticks(ax)
        ax.set_xticks(lens, [str(T) for T in lens], minor=False)
    return finish_plot(fig, path, *axes[0])


def plot_pareto(points: list[dict], front: list[dict], path: Path) -> Path:
    """Accuracy against ORT latency, coloured by FLOPs; the Pareto front as a step line."""
    from matplotlib.colors import LogNorm
    from matplotlib.ticker import NullFormatter

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    flops = [max(p["flops"], 1) for p in points]
    norm = LogNorm(vmin=min(flops), vmax=max(max(flops), min(flops) * 1.01))
    sc = None
    for kind, marker in (("train", "o"), ("search", "^")):
        sel = [p for p in points if p["kind"] == kind]
        if sel:
            sc = ax.scatter([p["latency_p50_ms"] for p in sel], [p["acc"] for p in sel], c=[p["flops"] for p in sel],
                            norm=norm, cmap="viridis", marker=marker, s=50, edgecolor="k",
                            label=f"{kind} runs ({'test/val acc' if kind == 'train' else 'supernet val acc'})")
    if sc is not None:
        bar = fig.colorbar(sc, ax=ax, label="FLOPs (one sequence at max_len)")
        ticks = sorted(set(flops))[:: max(1, len(set(flops)) // 5)]  # the runs' own values, at most ~6
        bar.set_ticks(ticks, labels=[human(v) for v in ticks])
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    for p in points:
        ax.annotate(p["name"], (p["latency_p50_ms"], p["acc"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    if len(front) > 1:
        ax.step([p["latency_p50_ms"] for p in front], [p["acc"] for p in front], where="post", color="C3",
                alpha=0.6, label="Pareto front")
    ax.set(xlabel="ONNX Runtime p50 latency (ms), batch 1 at max_len", ylabel="accuracy",
           title="accuracy vs latency vs FLOPs")
    return finish_plot(fig, path, ax)


def _ms(r: dict | None, key: str = "p50_ms") -> str:
    return f"{r[key]:.3f}" if r else "-"


def markdown(report: dict) -> str:
    env, s = report["env"], report["settings"]
    lines = [f"# Latency: {report['target']}", "",
             f"Mode: {report['mode']}. ONNX Runtime ({s['provider']}, graph optimisation `{s['graph_opt']}`) and "
             f"PyTorch eager (no_grad) with {s['threads']} intra-op threads each: {s['warmup']} warm-up calls, then "
             f"up to {s['repeats']} timed calls per point in {s['rounds']} rounds alternating the two runtimes "
             f"(capped near {s['budget_s']} s per runtime), samples pooled. Latency in ms; load average "
             f"{report.get('load_avg', '?')} at the end"
             + (" (BUSY MACHINE: eager timings with several threads suffer most)"
                if (report.get("load_avg") or 0) > (env.get("cores_usable") or 1) / 2 else "") + ".", "",
             table([[k, env.get(k)] for k in ("cpu", "cores", "cores_usable", "python", "torch", "onnx",
                                               "onnxruntime", "numpy", "provider", "hash")],
                   ["environment", "value"], markdown=True), ""]
    for subj in report["subjects"]:
        lines.append(f"- `{subj['name']}` ({subj['kind']}, max_len {subj['max_len']})"
                     + (f": torch weights from {subj['note']}" if subj.get("note") else ""))
        for graph, kernels in subj.get("attention_kernels", {}).items():
            lines += [f"  - attention kernels, {graph} graph: `{scope}` {kernel}" for scope, kernel in kernels.items()]
    graphs = sorted({r.get("graph", "padded") for r in report["rows"] if r["backend"] == ORT})
    if graphs:
        lines += ["", f"ORT ran the {' and '.join(graphs)} graph(s): batches without padding (the bench's random "
                      "tokens) take the unpadded graph, as `nasgraph predict` does."]
    body = []
    for p in paired(report["rows"]):
        o, e = p.get(ORT), p.get(EAGER)
        ratio = f"{o['p50_ms'] / e['p50_ms']:.2f}" if o and e else "-"
        body.append([p["subject"], p["batch"], p["seq_len"], _ms(o), _ms(o, "p90_ms"), _ms(o, "p99_ms"), _ms(e),
                     _ms(e, "p90_ms"), _ms(e, "p99_ms"), ratio, f"{o['throughput']:.1f}" if o else "-",
                     f"{e['throughput']:.1f}" if e else "-"])
    lines += ["", table(body, ["subject", "B", "T", "ORT p50", "ORT p90", "ORT p99", "eager p50", "eager p90",
                               "eager p99", "ORT/eager", "ORT seq/s", "eager seq/s"], markdown=True), "",
              "![latency vs sequence length](latency_vs_seq.png)"]
    if report["skipped"]:
        lines += ["", "Skipped: " + "; ".join(report["skipped"])]
    if report.get("runs"):
        rows = [[p["name"], p["kind"], f"{p['acc']:.4f} ({p['acc_split']})", human(p["flops"]), human(p["params"]),
                 p["seq_len"], f"{p['latency_p50_ms']:.3f}", "yes" if p.get("pareto") else ""] for p in report["runs"]]
        lines += ["", "## Runs", "", table(rows, ["run", "kind", "accuracy", "FLOPs", "params", "T",
                                                 "ORT p50 ms (B=1)", "Pareto"], markdown=True),
                  "", "![accuracy vs latency vs FLOPs](pareto.png)"]
    return "\n".join(lines) + "\n"


def write_report(report: dict, out: Path) -> list[Path]:
    """report.json, report.md, latency_vs_seq.png and (with runs) pareto.png in `out`."""
    from exporters.pareto import pareto_front

    out.mkdir(parents=True, exist_ok=True)
    written = []
    if report.get("runs"):
        front = {p["run"] for p in pareto_front(report["runs"])}
        for p in report["runs"]:
            p["pareto"] = p["run"] in front
        written.append(plot_pareto(report["runs"], [p for p in report["runs"] if p["pareto"]], out / "pareto.png"))
    written.append(plot_latency(report, out / "latency_vs_seq.png"))
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    atomic_write_text(out / "report.md", markdown(report))
    return [out / "report.json", out / "report.md", *written]
