"""`nasgraph derive RUN -o derived.yaml`: the discrete spec a search picked."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.errors import NasgraphError

NAME = "derive"
HELP = "write the discrete architecture a search run picked as a spec that compiles on its own"
ORDER = 4


def add_arguments(p) -> None:
    p.add_argument("run", type=Path, help="a search run folder")
    p.add_argument("-o", "--output", type=Path, required=True, help="derived spec to write")
    p.add_argument("--seed", type=int, help="use this seed's pick instead of the vote over seeds")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")


def run(args) -> int:
    from nasgraph.graph import compile_spec
    from nasgraph.search.derive import derive_spec
    from nasgraph.spec import dump_spec, load_spec

    result = args.run / "search.json"
    if not result.exists():
        raise NasgraphError(f"{args.run}: not a finished search run (no search.json)")
    outcome = json.loads(result.read_text())
    choice = outcome["choice"]
    if args.seed is not None:
        by_seed = {r["seed"]: r["choice"] for r in outcome["per_seed"]}
        if args.seed not in by_seed:
            raise NasgraphError(f"--seed {args.seed}: the run has seeds {', '.join(map(str, by_seed))}")
        choice = by_seed[args.seed]
    doc = load_spec(args.run / "spec.yaml")
    derived = derive_spec(doc.raw, compile_spec(doc), choice)
    dump_spec(derived, args.output, overwrite=args.force)
    try:
        compile_spec(load_spec(args.output))  # the derived spec must compile on its own
    except NasgraphError:
        args.output.unlink()
        raise
    print(f"wrote {args.output}")
    return 0
