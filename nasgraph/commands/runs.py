"""`nasgraph runs [DIR]`: the runs under a folder, with kind, task, status and headline metric."""
from __future__ import annotations

from pathlib import Path

from nasgraph.commands._common import add_json, print_json
from nasgraph.errors import NasgraphError
from nasgraph.textfmt import table

NAME = "runs"
HELP = "list the run folders under DIR (default runs/): kind, task, status and headline metric"
ORDER = 12


def add_arguments(p) -> None:
    p.add_argument("dir", nargs="?", type=Path, default=Path("runs"), help="folder to look in (default runs/)")
    p.add_argument("--depth", type=int, default=3, help="how many folder levels to look down (default 3)")
    add_json(p, "the list of runs")


def run(args) -> int:
    from nasgraph.runs import find_runs

    if not args.dir.is_dir():
        raise NasgraphError(f"{args.dir}: no such folder")
    runs = find_runs(args.dir, args.depth)
    if args.json:
        print_json({"runs": [r.to_json() for r in runs]})
        return 0
    if not runs:
        print(f"no runs under {args.dir}")
        return 0
    rows = [[str(r.path), r.kind, r.name or "-", r.task_label, r.status,
             f"{r.metric} {r.value:.4g}" if r.value is not None else "-", r.detail] for r in runs]
    print(table(rows, ["run", "kind", "spec", "task", "status", "headline", "detail"]))
    return 0
