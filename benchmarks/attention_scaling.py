"""How each attention type's latency and memory grow with sequence length, eager vs ONNX Runtime.

For every registered type (plus torch.nn.MultiheadAttention as the baseline row): batch 1,
d_model 256, 4 heads, T = 256 .. 8192 doubling, CPU; non-causal forms unless --causal (causal-only
types, the recurrences, always run causal). Per type, one child process exports once with a
dynamic T (dynamo, opset 18), checks parity at the smallest T, measures peak resident memory of one
forward at each T, and times PyTorch eager and ONNX Runtime (same thread count, one session per T
kept for all rounds) in --rounds rounds, each round every T in turn (eager then ORT), so that a
change of load on a shared machine slows all lengths alike instead of skewing their ratio. A type
that times out or crashes (e.g. killed for memory) is recorded at that T and skipped beyond it.

Writes benchmarks/out/attention_scaling.{md,json,png} and prints the table. The per-type child process
is attention_scaling_child.py, the table, flags and plot attention_scaling_report.py.

    .venv/bin/python benchmarks/attention_scaling.py                      # everything (long)
    .venv/bin/python benchmarks/attention_scaling.py --types softmax,linear --max-t 1024 --repeats 3
    .venv/bin/python benchmarks/attention_scaling.py --types retention,retention@block=0 --causal ...  # before/after
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from attention_scaling_child import BASELINE, parse_variant, run_type  # noqa: E402
from attention_scaling_report import plot, summarise, write_outputs  # noqa: E402
from exporters.latency import env_fingerprint  # noqa: E402
from exporters.runtime import GRAPH_OPT_LEVELS  # noqa: E402


# -- parent: isolation, timeouts, report --------------------------------------------------------------
def measure_type(name: str, lengths: list[int], opts: dict) -> tuple[dict, list[dict]]:
    """Run one type's child (see run_type's messages); a length it dies or hangs on (no message for
    timeout_s) is recorded as failed, the shorter lengths keep what they measured, longer ones are skipped."""
    ctx = mp.get_context("spawn")
    results: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=run_type, args=(name, lengths, opts, results), daemon=True)
    proc.start()
    info, rows, current = {"type": name}, {}, lengths[0]
    deadline = time.monotonic() + opts["timeout_s"]
    while True:
        try:
            kind, payload = results.get(timeout=1.0)
        except queue.Empty:
            alive = proc.is_alive()
            if alive and time.monotonic() < deadline:
                continue
            failure = (f"timeout after {opts['timeout_s']:.0f} s" if alive
                       else f"crashed, exit code {proc.exitcode} (-9: killed, likely out of memory)")
            rows[current] = {"type": name, "T": current, "error": failure}
            break
        deadline = time.monotonic() + opts["timeout_s"]
        if kind == "done":
            break
        if kind == "info":
            info = payload
        elif kind == "start":
            current = payload
        else:
            rows[payload["T"]] = payload
    failed = min((T for T, r in rows.items() if "error" in r), default=None)
    kept = [rows[T] for T in lengths if T in rows and (failed is None or T <= failed)]
    kept += [{"type": name, "T": T, "error": "skipped after a failure at a shorter T"}
             for T in lengths if failed is not None and T > failed]
    proc.terminate()
    proc.join(5)
    results.close()
    results.cancel_join_thread()
    return info, kept


def main(argv: list[str] | None = None) -> int:
    from nasgraph.attention import get, names

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--types", help=f"comma-separated; default: all registered + '{BASELINE}'; "
                        "TYPE@KEY=VALUE[@...] adds a row with config overrides, e.g. retention@block=0")
    parser.add_argument("--min-t", type=int, default=256)
    parser.add_argument("--max-t", type=int, default=8192)
    parser.add_argument("--lengths", help="comma-separated T values instead of the doublings from --min-t to --max-t")
    parser.add_argument("--repeats", type=int, default=12, help="timed calls per backend and T")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds over all lengths, each one eager/ORT alternation per T")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--graph-opt", default="all", choices=GRAPH_OPT_LEVELS)
    parser.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                        help="cpu: compare the calling thread's CPU time per call (with --threads 1 the call's "
                             "work, steady on a shared machine)")
    parser.add_argument("--causal", action="store_true",
                        help="causal form of every type that has one (causal-only types always are)")
    parser.add_argument("--budget-s", type=float, default=15.0, help="cap on timed seconds per measurement")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="per length, round and type")
    parser.add_argument("--explain-t", type=int, default=1024, help="T for the per-level ORT table (0: off)")
    parser.add_argument("--ort-ops", action="store_true", help="export with exporters.fast_ops.export_translations() "
                        "(ORT's contrib kernels where installed, e.g. LinearAttention), as `nasgraph export` does")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args(argv)
    types = args.types.split(",") if args.types else [BASELINE, *names()]
    for t in types:
        if t != BASELINE:
            get(parse_variant(t)[0])  # ConfigError listing the valid names
    lengths = ([int(T) for T in args.lengths.split(",")] if args.lengths
               else [T for T in (2 ** i for i in range(8, 16)) if args.min_t <= T <= args.max_t])
    opts = {k: getattr(args, k) for k in ("threads", "repeats", "rounds", "graph_opt", "budget_s", "timeout_s",
                                          "explain_t", "causal", "clock", "ort_ops")}
    env = env_fingerprint("cpu")
    opts["load_avg_start"] = os.getloadavg()[0]  # other processes skew timings: keep the evidence
    infos, rows, summaries = {}, [], []
    args.out.mkdir(parents=True, exist_ok=True)
    for name in types:
        start = time.perf_counter()
        info, type_rows = measure_type(name, lengths, opts)
        infos[name], rows = info, rows + type_rows
        linear = name != BASELINE and get(parse_variant(name)[0]).caps.linear
        summaries.append(summarise(name, type_rows, lengths, linear, opts))
        print(f"{name}: {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
        # written after every type: a run killed part-way keeps what it measured
        table = write_outputs(args.out, summaries, rows, infos, lengths, opts, env)
    plot(summaries, args.out / "attention_scaling.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
