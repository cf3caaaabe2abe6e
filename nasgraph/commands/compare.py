"""`nasgraph compare RUN RUN ... [--out DIR]`: runs of one task side by side, and their Pareto front."""
from __future__ import annotations

from pathlib import Path

from nasgraph.commands._common import add_json, print_json
from nasgraph.errors import NasgraphError

NAME = "compare"
HELP = "put train/search runs of the same task side by side: accuracy vs FLOPs (or measured latency), Pareto front"
ORDER = 13


def add_arguments(p) -> None:
    p.add_argument("runs", type=Path, nargs="+", help="train or search run folders (all of one task)")
    p.add_argument("--out", type=Path, help="write compare.json, compare.md and pareto.png here")
    p.add_argument("--latency", action="store_true", help="cost = measured ONNX Runtime p50 latency at "
                                                          "(batch 1, max_len) instead of FLOPs (exports each run)")
    p.add_argument("--threads", type=int, help="intra-op threads for --latency (default: the spec's bench.threads)")
    p.add_argument("--force", action="store_true", help="replace an existing comparison in --out")
    add_json(p, "the comparison (compare.json)")


def run(args) -> int:
    from nasgraph.compare import compare, render, write

    if args.out and (args.out / "compare.json").exists() and not args.force:
        raise NasgraphError(f"{args.out} already holds a comparison; pass --force or choose another --out")
    grid = None
    if args.latency:
        from exporters.bench import make_grid

        grid = make_grid(args.runs[0], threads=args.threads)
    result = compare(args.runs, latency=args.latency, grid=grid)
    written = write(result, args.out) if args.out else []
    if args.json:
        print_json(result)
        return 0
    print(render(result))
    print("\n" + (f"wrote {', '.join(str(p) for p in written)}" if written else "pass --out DIR for the plot"))
    return 0
