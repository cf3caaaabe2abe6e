"""Write a decode bench report: report.json (every row), report.md (tables and ratios), PNG plots."""
from __future__ import annotations

import json
from pathlib import Path

from exporters.bench_report import MARKERS
from nasgraph.plotting import finish_plot, plain_ticks, pyplot
from nasgraph.textfmt import table

ORT, EAGER = "onnxruntime", "torch-eager"
STYLES = {ORT: ("ORT", "-"), EAGER: ("eager", "--")}


def _mb(n: int | None) -> str:
    return "" if n is None else f"{n / 2 ** 20:.3f}"


def _by_point(rows: list[dict], kind: str) -> dict[tuple, dict]:
    out: dict[tuple, dict] = {}
    for r in rows:
        if r["kind"] == kind:
            out.setdefault((r["subject"], r["length"]), {})[r["backend"]] = r
    return out


def _backends(rows: list[dict]) -> list[str]:
    return [b for b in (ORT, EAGER) if any(r["backend"] == b for r in rows)]


def step_table(rows: list[dict]) -> str:
    """Per-token decode: one line per (subject, context), the backends side by side."""
    backends = _backends(rows)
    lines = [[subject, C, *(_ms(by.get(b)) for b in backends), *(_tps(by.get(b)) for b in backends),
              _mb(next(iter(by.values())).get("state_bytes"))] for (subject, C), by in _by_point(rows, "step").items()]
    names = [STYLES[b][0] for b in backends]
    return table(lines, ["subject", "context", *(f"{n} ms/token" for n in names), *(f"{n} tokens/s" for n in names),
                         "state MB"], markdown=True)


def prefill_table(rows: list[dict]) -> str:
    backends = _backends(rows)
    return table([[s, T, *(_ms(by.get(b)) for b in backends)] for (s, T), by in _by_point(rows, "prefill").items()],
                 ["subject", "prompt tokens", *(f"{STYLES[b][0]} prefill ms" for b in backends)], markdown=True)


def _ms(r: dict | None) -> str:
    return "" if r is None else f"{r['p50_ms']:.3f}"


def _tps(r: dict | None) -> str:
    return "" if r is None or not r.get("tokens_per_s") else f"{r['tokens_per_s']:.0f}"


def plot_decode(rows: list[dict], path: Path, threads: int) -> Path:
    """Three panels: prefill ms vs prompt length, ms per token vs context, state MB vs context."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    subjects = list(dict.fromkeys(r["subject"] for r in rows))
    panels = (("prefill", "p50_ms", "prompt length (tokens)", "prefill p50 (ms)", axes[0]),
              ("step", "p50_ms", "context length (tokens)", "per-token decode p50 (ms)", axes[1]),
              ("step", "state_bytes", "context length (tokens)", "decoding state (MB, batch 1)", axes[2]))
    for kind, key, xlabel, ylabel, ax in panels:
        for i, s in enumerate(subjects):
            for backend, (short, style) in STYLES.items():
                if key == "state_bytes" and backend == ORT:
                    continue                                   # the same state in both runtimes
                pts = sorted((r["length"], r[key] / (2 ** 20 if key == "state_bytes" else 1)) for r in rows
                             if r["subject"] == s and r["kind"] == kind and r["backend"] == backend
                             and r.get(key) is not None)
                if pts:
                    label = s if key == "state_bytes" else f"{s} ({short})"
                    ax.plot(*zip(*pts), style, marker=MARKERS[i % len(MARKERS)], ms=4, color=f"C{i % 10}",
                            label=label)
        ax.set(xscale="log", yscale="log" if key == "state_bytes" else "linear", xlabel=xlabel, ylabel=ylabel)
        if key != "state_bytes":
            ax.set_ylim(bottom=0)                              # flat vs growing reads best from zero
        plain_ticks(ax)
        lengths = sorted({r["length"] for r in rows if r["kind"] == kind})
        ax.set_xticks(lengths, [str(n) for n in lengths], minor=False)
    axes[1].set_title(f"batch 1, {threads} threads")
    return finish_plot(fig, path, *axes)


def write_decode_report(report: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    rows, settings = report["rows"], report["settings"]
    written = [out / "report.json"]
    written[0].write_text(json.dumps(report, indent=1, default=str))
    if rows:
        written.append(plot_decode(rows, out / "decode.png", settings["threads"]))
    md = [f"# Decode benchmark: {report['target']}", "",
          f"Backends: {', '.join(report['backends'])}. {settings['threads']} threads, batch 1, p50 of up to "
          f"{settings['repeats']} timed calls after {settings['warmup']} warm-up calls. Per-token latency at "
          f"context C: one step from the state after C tokens. Weights: {report['weights']}.", ""]
    if report.get("notes"):
        md += [f"- {n}" for n in report["notes"]] + [""]
    md += ["## Per-token decode", "", step_table(rows), "", "## Prefill", "", prefill_table(rows), ""]
    if report.get("ratios"):
        md += ["## Longest over shortest context (per-token p50)", "",
               table([[s, b, f"{v:.2f}"] for s, b, v in report["ratios"]], ["subject", "backend", "ratio"],
                     markdown=True), ""]
    if rows:
        md += ["![decode](decode.png)", ""]
    written.append(out / "report.md")
    written[-1].write_text("\n".join(md))
    return written
