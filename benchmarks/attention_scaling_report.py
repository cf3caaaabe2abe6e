"""attention_scaling's report: ratios and flags per type, the markdown table, the plot, the files."""
from __future__ import annotations

import json
import os
from pathlib import Path

from attention_scaling_child import D_MODEL, N_HEADS, statistic
from exporters.runtime import GRAPH_OPT_LEVELS


def summarise(name: str, rows: list[dict], lengths: list[int], linear: bool, opts: dict) -> dict:
    p50 = {be: {r["T"]: r[be][statistic(opts)] for r in rows if be in r} for be in ("eager", "ort")}
    t_max, ratio = max(lengths), {}
    for be, times in p50.items():
        if 1024 in times and t_max in times and t_max > 1024:
            ratio[be] = times[t_max] / times[1024]
    limit = 1.125 * t_max / 1024  # linear growth plus 12.5 %: 9x for 8192/1024
    flags = []
    if linear and any(r > limit for r in ratio.values()):
        flags.append(f"linear type grows {max(ratio.values()):.1f}x over {t_max // 1024}x T")
    slower = [T for T in p50["ort"] if T <= 2048 and T in p50["eager"] and p50["ort"][T] > p50["eager"][T]]
    if slower:
        flags.append("ORT slower than eager at T=" + ",".join(map(str, slower)))
    return {"type": name, "p50": p50, "ratio": ratio, "flags": flags}


def markdown(summaries: list[dict], rows: list[dict], infos: dict, lengths: list[int], opts, env) -> str:
    t_max = max(lengths)
    head = ["type"] + [str(T) for T in lengths] + [f"{t_max}/1024 eager", f"{t_max}/1024 ORT",
                                                  f"peak MB @{t_max} eager/ORT", "flags"]
    lines = [f"# Attention scaling: eager / ONNX Runtime p50 ms of {opts['clock']} time (batch 1, d_model "
             f"{D_MODEL}, {N_HEADS} heads, {opts['threads']} threads, graph_opt {opts['graph_opt']})", "",
             f"env {env['hash']}: {env['cpu']}, {env['cores']} cores, torch {env['torch']}, "
             f"onnxruntime {env['onnxruntime']}; load average {opts['load_avg_start']:.1f} at start, "
             f"{opts['load_avg_end']:.1f} at end" + (" (BUSY MACHINE: timings inflated)"
                                                     if opts["load_avg_end"] > env["cores"] / 2 else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        by_t = {r["T"]: r for r in rows if r["type"] == s["type"]}
        cells = []
        for T in lengths:
            r = by_t.get(T, {})
            if "error" in r and "eager" not in r:
                cells.append(_error_cell(r["error"]))
                continue
            e, o = s["p50"]["eager"].get(T), s["p50"]["ort"].get(T)
            cells.append(f"{_num(e)} / {_num(o)}")
        last = by_t.get(t_max, {})
        mem = f"{_num(last.get('eager_peak_mb'))} / {_num(last.get('ort_peak_mb'))}"
        ratios = [f"{s['ratio'][be]:.1f}" if be in s["ratio"] else "-" for be in ("eager", "ort")]
        info = infos.get(s["type"], {})
        note, diff = info.get("export_error"), info.get("parity_max_abs_diff", 0.0)
        flags = "; ".join(s["flags"] + ([f"export failed: {note}"] if note else [])
                          + ([f"ORT differs from eager by {diff:.2g}"] if diff > 1e-4 else []))
        lines.append("| " + " | ".join([s["type"], *cells, *ratios, mem, flags]) + " |")
    explained = [r for r in rows if "ort_by_level_ms" in r]
    if explained:
        lines += ["", f"## ORT p50 ms by graph optimisation level at T={opts['explain_t']} (eager for reference)",
                  "", "| type | eager | " + " | ".join(GRAPH_OPT_LEVELS) + " | Einsum nodes | fused ops after 'all' |",
                  "|" + "---|" * (len(GRAPH_OPT_LEVELS) + 4)]
        for r in explained:
            ops = infos.get(r["type"], {})
            fused = [k for k in ops.get("ops_optimized", {}) if k.startswith(("com.microsoft", "Fused"))]
            lines.append(f"| {r['type']} | {_num(r['eager']['p50_ms'])} | "
                         + " | ".join(_num(r["ort_by_level_ms"][lv]) for lv in GRAPH_OPT_LEVELS)
                         + f" | {ops.get('ops_exported', {}).get('Einsum', 0)} | {', '.join(fused) or '-'} |")
    return "\n".join(lines) + "\n"


def _error_cell(error: str) -> str:
    for word in ("timeout", "crashed", "skipped"):
        if error.startswith(word):
            return word
    return error.split(":")[0]  # the exception type


def _num(v) -> str:
    return "-" if v is None else f"{v:.3g}" if v < 100 else f"{v:.0f}"


def plot(summaries: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 7))
    colors = plt.cm.tab20.colors
    for i, s in enumerate(summaries):
        for be, style in (("eager", "-"), ("ort", "--")):
            pts = sorted(s["p50"][be].items())
            if pts:
                ax.plot(*zip(*pts), style, color=colors[i % 20], marker=".",
                        label=s["type"] if be == "eager" else None)
    ax.set(xscale="log", yscale="log", xlabel="sequence length T", ylabel="p50 latency (ms)",
           title="Attention latency vs T (solid: PyTorch eager, dashed: ONNX Runtime)")
    ax.set_xscale("log", base=2)
    lengths = sorted({T for s in summaries for be in s["p50"].values() for T in be})
    ax.set_xticks(lengths, [str(T) for T in lengths])
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(out: Path, summaries, rows, infos, lengths, opts, env) -> str:
    """attention_scaling.{md,json} of the types measured so far; returns the markdown."""
    opts["load_avg_end"] = os.getloadavg()[0]
    table = markdown(summaries, rows, infos, lengths, opts, env)
    (out / "attention_scaling.md").write_text(table)
    (out / "attention_scaling.json").write_text(json.dumps(
        {"env": env, "settings": {**opts, "lengths": lengths, "d_model": D_MODEL, "heads": N_HEADS, "batch": 1},
         "types": infos, "summaries": summaries, "rows": rows}, indent=1, default=str))
    return table
