"""`nasgraph bench model.onnx --out DIR`: ONNX Runtime vs PyTorch eager latency, report and plots."""
from __future__ import annotations

import argparse
from pathlib import Path

from nasgraph.commands._common import add_json, print_json

NAME = "bench"
HELP = "time an exported model, a spec's attention candidates or a train run: ONNX Runtime vs PyTorch eager"
ORDER = 9


def _ints(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers like 128,512, got {text!r}")
    return values


def add_arguments(p) -> None:
    p.add_argument("target", type=Path, help="an exported .onnx, a spec YAML (choice points: every candidate "
                                             "as a standalone layer; else the model), or a train run folder")
    p.add_argument("--out", type=Path, required=True, help="folder for report.md, report.json and plots")
    p.add_argument("--batch", type=_ints, help="batch sizes, e.g. 1,8 (default: the spec's bench.batch_sizes)")
    p.add_argument("--seq", type=_ints, help="sequence lengths, e.g. 128,512 (default: bench.seq_lens)")
    p.add_argument("--threads", type=int, help="intra-op threads for both runtimes (default: bench.threads, "
                                                "else every usable core)")
    p.add_argument("--repeats", type=int, help="timed calls per point (default: bench.repeats)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default: bench.warmup)")
    p.add_argument("--graph-opt", default="all", help="onnxruntime optimisation: disable | basic | extended | all")
    p.add_argument("--provider", default="cpu", help="cpu | cuda (the provider really used is checked)")
    p.add_argument("--candidates", action="store_true", help="for a spec: time its attention candidates "
                                                              "even when it has no choice point")
    p.add_argument("--runs", type=Path, nargs="+", default=[], help="train/search run folders for the "
                                                                     "accuracy vs latency vs FLOPs plot")
    p.add_argument("--decode", action="store_true", help="generation cost of a causal train run or spec: "
                   "prefill latency vs prompt length (--seq), per-token decode latency, tokens/s and state memory "
                   "vs context length (--contexts)")
    p.add_argument("--contexts", type=_ints, help="--decode: context lengths, e.g. 1024,8192 "
                                                  "(default 1024,2048,4096,8192)")
    p.add_argument("--force", action="store_true", help="replace the report of an earlier bench in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    add_json(p, "report.json")


def run(args) -> int:
    from nasgraph.api import bench

    if args.decode:
        return run_decode(args)
    if args.contexts:
        from nasgraph.errors import NasgraphError
        raise NasgraphError("--contexts is a --decode setting; add --decode")
    result = bench(args.target, args.out, batches=args.batch, seq_lens=args.seq, threads=args.threads,
                   repeats=args.repeats, warmup=args.warmup, graph_opt=args.graph_opt, provider=args.provider,
                   candidates=args.candidates, runs=args.runs, overwrite=args.force, progress=args.progress)
    if args.json:
        print_json(result.to_json())
        return 0
    pairs = {}
    for r in result.report["rows"]:
        pairs.setdefault((r["subject"], r["batch"], r["seq_len"]), {})[r["backend"]] = r["p50_ms"]
    for (subject, B, T), v in pairs.items():
        ort, eager = v.get("onnxruntime"), v.get("torch-eager")
        ratio = f", ORT/eager {ort / eager:.2f}" if ort and eager else ""
        print(f"{subject} B={B} T={T}: ORT p50 {ort:.3f} ms" + (f", eager p50 {eager:.3f} ms" if eager else "") + ratio)
    print(f"wrote {', '.join(str(p) for p in result.written)}")
    return 0


def run_decode(args) -> int:
    from nasgraph.api import bench_decode

    result = bench_decode(args.target, args.out, prompt_lens=args.seq, contexts=args.contexts, threads=args.threads,
                          repeats=args.repeats, warmup=args.warmup, overwrite=args.force, progress=args.progress)
    if args.json:
        print_json(result.to_json())
        return 0
    for r in result.report["rows"]:
        what = (f"decode at context {r['length']}: {r['p50_ms']:.3f} ms/token, {r['tokens_per_s']:.0f} tokens/s, "
                f"state {r['state_bytes'] / 2 ** 20:.3f} MB" if r["kind"] == "step"
                else f"prefill {r['length']} tokens: {r['p50_ms']:.3f} ms")
        print(f"{r['subject']} ({r['backend']}): {what}")
    for note in result.report["notes"]:
        print(f"note: {note}")
    print(f"wrote {', '.join(str(p) for p in result.written)}")
    return 0
