"""`nasgraph bench model.onnx --out DIR`: ONNX Runtime vs PyTorch eager latency, report and plots."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from nasgraph.errors import NasgraphError

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
    p.add_argument("--force", action="store_true", help="replace the report of an earlier bench in --out")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")


def run(args) -> int:
    from exporters.bench import bench, make_grid
    from exporters.bench_report import write_report
    from exporters.pareto import run_point
    from exporters.runtime import read_metadata
    from nasgraph.runfolder import claim, kind_of

    from exporters.runtime import GRAPH_OPT_LEVELS, PROVIDERS

    if args.threads is not None and args.threads < 1:
        raise NasgraphError(f"--threads must be >= 1, got {args.threads}")
    if args.graph_opt not in GRAPH_OPT_LEVELS:
        raise NasgraphError(f"--graph-opt {args.graph_opt!r}: valid: {', '.join(GRAPH_OPT_LEVELS)}")
    if args.provider not in PROVIDERS:
        raise NasgraphError(f"--provider {args.provider!r}: valid: {', '.join(PROVIDERS)}")
    if not args.target.exists():
        raise NasgraphError(f"{args.target}: no such .onnx file, spec or run folder")
    for r in args.runs:   # checked before the benchmark, like --out
        if kind_of(r) not in ("train", "search"):
            raise NasgraphError(f"--runs {r}: not a train or search run folder")
    grid = make_grid(args.target, batches=args.batch, seq_lens=args.seq, threads=args.threads,
                     repeats=args.repeats, warmup=args.warmup, graph_opt=args.graph_opt, provider=args.provider)
    claim(args.out, "bench", replace=args.force)   # before the benchmark: a bad --out must not cost a whole run
    with tempfile.TemporaryDirectory(prefix="nasgraph-bench-") as tmp:
        report = bench(args.target, grid, candidates=args.candidates or None, progress=args.progress, workdir=tmp)
        exported = {}  # a run whose model is the bench target is not exported again
        if args.target.suffix == ".onnx":
            source = read_metadata(args.target).get("nasgraph.source", "")
            exported = {source: args.target} if source else {}
        elif args.target.is_dir():
            exported = {str(args.target.resolve()): Path(report["subjects"][0]["onnx"])}
        report["runs"] = [run_point(r, grid, exported) for r in args.runs]
    for s in report["subjects"]:
        s["onnx"] = str(args.target) if args.target.suffix == ".onnx" else "(temporary export)"
    written = write_report(report, args.out)
    pairs = {}
    for r in report["rows"]:
        pairs.setdefault((r["subject"], r["batch"], r["seq_len"]), {})[r["backend"]] = r["p50_ms"]
    for (subject, B, T), v in pairs.items():
        ort, eager = v.get("onnxruntime"), v.get("torch-eager")
        ratio = f", ORT/eager {ort / eager:.2f}" if ort and eager else ""
        print(f"{subject} B={B} T={T}: ORT p50 {ort:.3f} ms" + (f", eager p50 {eager:.3f} ms" if eager else "") + ratio)
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0
