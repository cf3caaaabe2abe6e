"""How each attention type's latency and memory grow with sequence length, eager vs ONNX Runtime.

For every registered type (plus torch.nn.MultiheadAttention as the baseline row): batch 1,
d_model 256, 4 heads, T = 256 .. 8192 doubling, CPU; non-causal forms unless --causal (causal-only
types, the recurrences, always run causal). Per type, one child process exports once with a
dynamic T (dynamo, opset 18), checks parity at the smallest T, then for each T times PyTorch eager
and ONNX Runtime (same thread count) and measures peak resident memory of one forward. A type that
times out or crashes (e.g. killed for memory) is recorded at that T and skipped beyond it.

Writes benchmarks/out/attention_scaling.{md,json,png} and prints the table.

    .venv/bin/python benchmarks/attention_scaling.py                      # everything (long)
    .venv/bin/python benchmarks/attention_scaling.py --types softmax,linear --max-t 1024 --repeats 3
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from exporters.latency import LatencyResult, env_fingerprint, ort_latency, peak_rss_mb, torch_latency  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.runtime import GRAPH_OPT_LEVELS, make_session, op_counts  # noqa: E402

BASELINE = "nn.MultiheadAttention"
D_MODEL, N_HEADS = 256, 4


# -- child process: one type, all lengths -----------------------------------------------------------
def build_module(name: str, max_len: int, causal: bool = False):
    import torch
    from nasgraph.attention import build, get

    if name == BASELINE:
        class MHA(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = torch.nn.MultiheadAttention(D_MODEL, N_HEADS, batch_first=True)

            def forward(self, x):                                    # x: (B, T, D)
                return self.attn(x, x, x, need_weights=False)[0]     # (B, T, D)
        return MHA().eval()
    caps = get(name).caps
    causal = causal or not caps.noncausal                            # causal-only types: always causal
    return build(name, D_MODEL, N_HEADS, causal=causal, max_len=max_len if caps.bounded else None).eval()


def run_type(name: str, lengths: list[int], opts: dict, out: mp.Queue) -> None:
    """Child: export once, then send one result dict per length (or an error) to `out`."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(opts["threads"])
    model = build_module(name, max(lengths), opts["causal"])
    work = Path(tempfile.mkdtemp(prefix="attn_scaling_"))
    onnx_path, info = work / "model.onnx", {"type": name}
    x0 = torch.randn(1, lengths[0], D_MODEL)
    try:
        export_onnx(model, (x0,), onnx_path, input_names=["x"], output_names=["y"],
                    dynamic_axes={"x": {1: "seq"}}, axis_max={"seq": max(lengths)}, fallback=False)
        sess = make_session(onnx_path, threads=opts["threads"], graph_opt=opts["graph_opt"],
                            optimized_model_path=work / "optimized.onnx")
        with torch.no_grad():
            info["parity_max_abs_diff"] = float(np.abs(model(x0).numpy() - sess.run(None, {"x": x0.numpy()})[0]).max())
        info["ops_exported"] = op_counts(onnx_path)
        info["ops_optimized"] = op_counts(work / "optimized.onnx")
    except Exception as err:  # noqa: BLE001 - recorded, eager timings still useful
        onnx_path, info["export_error"] = None, f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    out.put(("info", info))
    for T in lengths:
        x = torch.randn(1, T, D_MODEL)
        row = {"type": name, "T": T}
        try:
            with torch.no_grad():
                row["eager_peak_mb"] = peak_rss_mb(lambda: model(x)).delta_mb
            row.update(_timed_rows(model, x, onnx_path, T, opts))
        except Exception as err:  # noqa: BLE001 - e.g. out of memory inside torch
            row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
            traceback.print_exc()
        out.put(("row", row))
        if "error" in row:
            break


def _timed_rows(model, x, path: Path | None, T: int, opts: dict) -> dict:
    """Eager and ORT timed in alternating rounds, so a busy machine slows both alike.

    The ORT session is fresh per T: its first run's memory growth is this T's activations, not an
    arena grown earlier.
    """
    rounds = max(1, min(opts["rounds"], opts["repeats"]))
    per_round = dict(repeats=max(1, opts["repeats"] // rounds), warmup=1, budget_s=opts["budget_s"] / rounds)
    sess = path and make_session(path, threads=opts["threads"], graph_opt=opts["graph_opt"])
    feeds = {"x": x.numpy()}
    row = {"ort_peak_mb": peak_rss_mb(lambda: sess.run(None, feeds)).delta_mb} if sess else {}
    eager, ort = [], []
    for _ in range(rounds):
        eager.append(torch_latency(model, (x,), threads=opts["threads"], **per_round))
        if sess:
            ort.append(ort_latency(sess, feeds, **per_round))
    row["eager"] = LatencyResult.combine(eager).row()
    if not sess:
        return row
    row["ort"] = LatencyResult.combine(ort).row()
    x = feeds["x"]
    if T == opts["explain_t"]:  # why is ORT slower or faster: the same graph at each optimisation level
        row["ort_by_level_ms"] = {
            level: ort_latency(make_session(path, threads=opts["threads"], graph_opt=level), {"x": x},
                               repeats=max(3, opts["repeats"] // 2),
                               budget_s=opts["budget_s"]).row()[statistic(opts)]
            for level in GRAPH_OPT_LEVELS}
    return row


# -- parent: isolation, timeouts, report --------------------------------------------------------------
def measure_type(name: str, lengths: list[int], opts: dict) -> tuple[dict, list[dict]]:
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=run_type, args=(name, lengths, opts, results), daemon=True)
    proc.start()
    info, rows, pending = {"type": name}, [], list(lengths)
    deadline = time.monotonic() + opts["timeout_s"]
    while pending:
        try:
            kind, payload = results.get(timeout=1.0)
        except queue.Empty:
            alive = proc.is_alive()
            if alive and time.monotonic() < deadline:
                continue
            failure = (f"timeout after {opts['timeout_s']:.0f} s" if alive
                       else f"crashed, exit code {proc.exitcode} (-9: killed, likely out of memory)")
            rows.append({"type": name, "T": pending[0], "error": failure})
            break
        deadline = time.monotonic() + opts["timeout_s"]
        if kind == "info":
            info = payload
            continue
        rows.append(payload)
        pending.remove(payload["T"])
        if "error" in payload:
            break
    rows += [{"type": name, "T": T, "error": "skipped after a failure at a shorter T"}
             for T in pending[1:] if all(r["T"] != T for r in rows)]
    proc.terminate()
    proc.join(5)
    results.close()
    results.cancel_join_thread()
    return info, rows


def statistic(opts: dict) -> str:
    """The per-call figure compared: wall-clock p50, or (--clock cpu) the calling thread's CPU time p50."""
    return "cpu_p50_ms" if opts["clock"] == "cpu" else "p50_ms"


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


def main(argv: list[str] | None = None) -> int:
    from nasgraph.attention import get, names

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", help=f"comma-separated; default: all registered + '{BASELINE}'")
    parser.add_argument("--min-t", type=int, default=256)
    parser.add_argument("--max-t", type=int, default=8192)
    parser.add_argument("--lengths", help="comma-separated T values instead of the doublings from --min-t to --max-t")
    parser.add_argument("--repeats", type=int, default=12, help="timed calls per backend and T")
    parser.add_argument("--rounds", type=int, default=3, help="eager/ORT alternations per T")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--graph-opt", default="all", choices=GRAPH_OPT_LEVELS)
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="cpu: compare the calling thread's CPU time per call (with --threads 1 the call's "
                             "work, steady on a shared machine)")
    parser.add_argument("--causal", action="store_true",
                        help="causal form of every type that has one (causal-only types always are)")
    parser.add_argument("--budget-s", type=float, default=15.0, help="cap on timed seconds per measurement")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per length and type")
    parser.add_argument("--explain-t", type=int, default=1024, help="T for the per-level ORT table (0: off)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)
    types = args.types.split(",") if args.types else [BASELINE, *names()]
    for t in types:
        if t != BASELINE:
            get(t)  # ConfigError listing the valid names
    lengths = ([int(T) for T in args.lengths.split(",")] if args.lengths
               else [T for T in (2 ** i for i in range(8, 16)) if args.min_t <= T <= args.max_t])
    opts = {k: getattr(args, k) for k in ("threads", "repeats", "rounds", "graph_opt", "budget_s", "timeout_s",
                                          "explain_t", "causal", "clock")}
    env = env_fingerprint("cpu")
    opts["load_avg_start"] = os.getloadavg()[0]  # other processes skew timings: keep the evidence
    infos, rows, summaries = {}, [], []
    args.out.mkdir(parents=True, exist_ok=True)
    for name in types:
        start = time.perf_counter()
        info, type_rows = measure_type(name, lengths, opts)
        infos[name], rows = info, rows + type_rows
        linear = name != BASELINE and get(name).caps.linear
        summaries.append(summarise(name, type_rows, lengths, linear, opts))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        # written after every type: a run killed part-way keeps what it measured
        table = write_outputs(args.out, summaries, rows, infos, lengths, opts, env)
    plot(summaries, args.out / "attention_scaling.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
