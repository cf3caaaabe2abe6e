"""`nasgraph derive RUN -o derived.yaml`: the discrete spec a search picked."""
from __future__ import annotations

from pathlib import Path

from nasgraph.commands._common import add_json, print_json

NAME = "derive"
HELP = "write the discrete architecture a search run picked as a spec that compiles on its own"
ORDER = 4


def add_arguments(p) -> None:
    p.add_argument("run", type=Path, help="a search run folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="derived spec to write")
    p.add_argument("--seed", type=int, help="use this seed's pick instead of the vote over seeds")
    p.add_argument("--point", type=int, help="an elastic search (strategy evolution): this point of the Pareto "
                                             "front instead of the pick (report.md lists them)")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")
    add_json(p, "path, run, seed and choice")


def run(args) -> int:
    from nasgraph.api import derive

    derived = derive(args.run, args.output, seed=args.seed, overwrite=args.force, point=args.point)
    if args.json:
        print_json(derived.to_json())
    else:
        print(f"wrote {derived.path}")
    return 0
