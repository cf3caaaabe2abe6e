"""The markdown report of `deploy_latency.py` (rows, int8 points, softmax-vs-matmul section), and the
table of several runs side by side:

    python benchmarks/deploy_latency_report.py run1/deploy_latency.json run2/deploy_latency.json
"""
from __future__ import annotations

import json
import os
import sys

TARGET = 0.8


def _cpu_cell(row: dict) -> str:
    """'; cpu X' (1 thread: the calling thread's CPU time) and '; proc Y' (the process's CPU time)."""
    out = f"; cpu {row['ratio_cpu']:.2f}" if row.get("ratio_cpu") else ""
    return out + (f"; proc {row['ratio_proc']:.2f}" if row.get("ratio_proc") and row.get("threads", 1) != 1 else "")


def _steady(row: dict) -> float:
    """The ratio the targets are judged on: CPU time (thread at 1 thread, process at more), else p50."""
    return row.get("ratio_cpu") or row.get("ratio_proc") or row["ratio"]


def header(env: dict, opts, load, passive: bool) -> list[str]:
    return ["# Deploy latency: ONNX Runtime vs PyTorch eager (batch 1, CPU)", "",
            f"env {env['hash']}: {env['cpu']}, {env['cores']} cores, torch {env['torch']}, onnxruntime "
            f"{env['onnxruntime']}. Load average {load[0]:.1f} at start, {load[1]:.1f} at end"
            + (" (BUSY MACHINE: wall times noisy)" if max(load) > env["cores"] / 2 else "")
            + f". OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: libgomp spins)')}, ORT "
            f"allow_spinning={'0' if passive else '1 (default)'}. Target ORT <= {TARGET}x eager. Derived models: "
            f"every choice point resolved to one candidate, random weights, task.max_len raised to {max(opts.lens)}; "
            f"eager and ORT alternate in {opts.rounds} rounds. Cells: eager p50 / ORT p50 ms (ORT/eager of p50; "
            "of the fastest call; cpu: of the calling thread's CPU time p50 (1 thread: the work of a call without "
            "other processes' share); proc: of the process's CPU time p50 (all threads' work; more than 1 "
            "thread)). 'met' judges the CPU-time ratio.", ""]


def thread_table(rows: list[dict], threads: int, lens: list[int]) -> list[str]:
    lines = [f"### {threads} thread(s)", "",
             "| spec | attention | " + " | ".join(f"T={T}" for T in lens) + " | target met (CPU time) |",
             "|---|---|" + "---|" * (len(lens) + 1)]
    keyed: dict = {}
    for r in rows:
        if r["threads"] == threads:
            keyed.setdefault((r["spec"], r["attention"]), {})[r["T"]] = r
    for (spec, label), by_t in keyed.items():
        cells = [(f"{by_t[T]['eager']['p50_ms']:.3g} / {by_t[T]['ort']['p50_ms']:.3g} "
                  f"({by_t[T]['ratio']:.2f}; {by_t[T]['ratio_min']:.2f}{_cpu_cell(by_t[T])})" if T in by_t else "error")
                 for T in lens]
        met = all(T in by_t and _steady(by_t[T]) <= TARGET for T in lens)
        lines.append(f"| {spec} | {label} | " + " | ".join(cells) + f" | {'yes' if met else 'no'} |")
    sel = [r for r in rows if r["threads"] == threads]
    lines += ["", f"{sum(_steady(r) <= TARGET for r in sel)} of {len(sel)} (model, T) points meet the target on CPU "
                  f"time, {sum(r['ratio'] <= TARGET for r in sel)} on wall p50, "
                  f"{sum(r['ratio_min'] <= TARGET for r in sel)} on the fastest call."]
    for T in lens:
        at = [_steady(r) for r in sel if r["T"] == T]
        if at:
            lines.append(f"- T={T}: {sum(v <= TARGET for v in at)} of {len(at)} met; CPU-time ratio "
                         f"{min(at):.2f}-{max(at):.2f}.")
    return lines + [""]


def int8_table(rows: list[dict]) -> list[str]:
    int8 = [(r["spec"], r["attention"], r["int8"]) for r in rows if "int8" in r]
    if not int8:
        return []
    first = int8[0][2]
    lines = [f"### int8 vs fp32, ORT, T={first['T']}, {first['threads']} thread(s); target <= 0.6x", "",
             "weights: MatMuls with constant weights (the export's default); +act: also activation-by-activation "
             "MatMuls (both inputs quantized per call). Cells: int8/fp32 of p50; of the fastest call; cpu.", "",
             "| spec | attention | fp32 ms | weights: int8 ms (ratios) | +act: int8 ms (ratios) | file MB fp32 -> int8 |",
             "|---|---|---|---|---|---|"]
    for spec, label, q in int8:
        cells = []
        for key in ("weights", "all"):
            v = q.get(key)
            cells.append("-" if v is None else f"{v['int8_ms']:.3g} ({v['ratio']:.2f}; {v['ratio_min']:.2f}{_cpu_cell(v)})"
                         + ("" if v.get("act_matmuls", 1) else " (no act MatMul)"))
        lines.append(f"| {spec} | {label} | {q['fp32_ms']:.3g} | {cells[0]} | {cells[1]} | "
                     f"{q['fp32_bytes'] / 1e6:.2f} -> {q['weights']['int8_bytes'] / 1e6:.2f} |")
    return lines + [""]


def peak_section(peak: dict | None, eff: list[dict], opts) -> list[str]:
    if not peak:
        return []
    lines = [f"## Softmax attention at T={eff[0]['T'] if eff else '-'} against large matmuls "
             f"({opts.single_threads} thread(s))", "",
             f"Matmul (best of 1024^3 and 2048^3) p50: torch {peak['torch_gmacs']:.1f} GMAC/s (n={peak['torch_n']}), "
             f"ORT {peak['ort_gmacs']:.1f} GMAC/s (n={peak['ort_n']}); fastest call: torch "
             f"{peak['torch_gmacs_best']:.1f}, ORT {peak['ort_gmacs_best']:.1f}"
             + (f"; least CPU time: torch {peak['torch_gmacs_cpu']:.1f}, ORT {peak['ort_gmacs_cpu']:.1f}"
                if "torch_gmacs_cpu" in peak else "") + ". GMAC/s = nasgraph FLOPs/s "
             "(multiply-add = 1); double for the 2-FLOP convention.", "",
             "| layer | GMAC | eager ms | eager GMAC/s (of torch matmul) | ORT ms | ORT GMAC/s (of ORT matmul) "
             "| of peak, fastest calls (1 thread: and CPU time): eager / ORT |", "|---|---|---|---|---|---|---|"]
    lines += [f"| d_model {e['d_model']}, {e['heads']} heads | {e['macs'] / 1e9:.2f} | {e['eager_ms']:.1f} | "
              f"{e['eager_gmacs']:.1f} ({e['eager_of_peak']:.0%}) | {e['ort_ms']:.1f} | {e['ort_gmacs']:.1f} "
              f"({e['ort_of_peak']:.0%}) | {e['eager_of_peak_best']:.0%} / {e['ort_of_peak_best']:.0%}"
              + (f"; CPU time {e['eager_of_peak_cpu']:.0%} / {e['ort_of_peak_cpu']:.0%}" if "ort_of_peak_cpu" in e else "")
              + " |" for e in eff]
    return lines


def markdown(rows, peak, eff, env, opts, load, passive: bool) -> str:
    lines = header(env, opts, load, passive)
    for threads in opts.threads:
        lines += thread_table(rows, threads, opts.lens)
    kernels = {(r["spec"], r["attention"]): r["kernels"] for r in rows}
    if kernels:
        lines += ["### Attention kernel per layer (the unpadded graph ORT ran)", "", "| spec | attention | kernels |",
                  "|---|---|---|"]
        lines += [f"| {spec} | {label} | " + "; ".join(f"{k.split('.')[-2]}: {v}" for k, v in ks.items()) + " |"
                  for (spec, label), ks in kernels.items()]
        lines.append("")
    lines += int8_table(rows) + peak_section(peak, eff, opts)
    return "\n".join(lines) + "\n"


def runs_table(runs: list[list[dict]]) -> list[str]:
    """CPU-time ORT/eager of each (spec, attention) at every T and thread count, one figure per run
    ("0.83, 0.79"), then how many points meet the target in every run and in any run."""
    keys = list(dict.fromkeys((r["spec"], r["attention"]) for rows in runs for r in rows))
    lens = sorted({r["T"] for rows in runs for r in rows})
    threads = sorted({r["threads"] for rows in runs for r in rows})
    found = [{(r["spec"], r["attention"], r["T"], r["threads"]): _steady(r) for r in rows} for rows in runs]
    cols = [f"T={T}: " + " / ".join(f"{t}t" for t in threads) for T in lens]
    lines = ["| spec | attention | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for spec, label in keys:
        cells = [" / ".join(", ".join(f"{f[(spec, label, T, t)]:.2f}" if (spec, label, T, t) in f else "-" for f in found)
                            for t in threads) for T in lens]
        lines.append(f"| {spec} | {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for t in threads:
        for T in lens:
            points = [[f.get((spec, label, T, t)) for f in found] for spec, label in keys]
            every = sum(all(v is not None and v <= TARGET for v in p) for p in points)
            some = sum(any(v is not None and v <= TARGET for v in p) for p in points)
            values = [v for p in points for v in p if v is not None]
            lines.append(f"- {t} thread(s), T={T}: {every} of {len(points)} met in every run, {some} in at least one; "
                         f"ratios {min(values):.2f}-{max(values):.2f}.")
    return lines + [""]


if __name__ == "__main__":
    print("\n".join(runs_table([json.loads(open(path).read())["rows"] for path in sys.argv[1:]])))
