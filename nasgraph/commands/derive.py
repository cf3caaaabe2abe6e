"""`nasgraph derive RUN -o derived.yaml`: the discrete spec a search picked."""
from __future__ import annotations

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
    from nasgraph.runfolder import require
    from nasgraph.training.rundir import read_json
    from nasgraph.search.derive import derive_spec
    from nasgraph.spec import dump_spec, load_spec

    if args.output.is_dir():
        raise NasgraphError(f"{args.output} is a folder; give a file name for -o (nothing was written)")
    require(args.run, "search")
    result = args.run / "search.json"
    if not result.exists():
        raise NasgraphError(f"{args.run}: not a finished search run (no search.json)")
    outcome = read_json(result)
    try:
        choice = outcome["choice"]
        by_seed = {r["seed"]: r["choice"] for r in outcome["per_seed"]}
    except (KeyError, TypeError):
        raise NasgraphError(f"{result}: damaged search result (no choice / per_seed choices)") from None
    if not isinstance(choice, dict):
        raise NasgraphError(f"{result}: damaged search result ('choice' is not a mapping)")
    if args.seed is not None:
        if args.seed not in by_seed:
            raise NasgraphError(f"--seed {args.seed}: the run has seeds {', '.join(map(str, by_seed))}")
        choice = by_seed[args.seed]
    doc = load_spec(args.run / "spec.yaml")
    graph = compile_spec(doc)
    check_choice(choice, graph, result)
    derived = derive_spec(doc.raw, graph, choice)
    dump_spec(derived, args.output, overwrite=args.force)
    try:
        compile_spec(load_spec(args.output))  # the derived spec must compile on its own
    except NasgraphError:
        args.output.unlink()
        raise
    print(f"wrote {args.output}")
    return 0


def check_choice(choice: dict, graph, where: Path) -> None:
    """A recorded pick must name every choice point of the run's spec, one valid index per group."""
    points = {n: d for n, d in graph.nodes(data=True) if d.get("choice")}
    if set(choice) != set(points):
        raise NasgraphError(f"{where}: the recorded choice names {sorted(choice)} but the run's spec has the choice "
                            f"points {sorted(points)}: damaged or from another spec")
    for node, picks in choice.items():
        d = points[node]
        n_cands = len(d["params"]["candidates"])
        groups = graph.graph["ctx"]["n_heads"] if d.get("granularity") == "head" else 1
        if (not isinstance(picks, list) or len(picks) != groups
                or not all(type(i) is int and 0 <= i < n_cands for i in picks)):
            raise NasgraphError(f"{where}: choice for {node} is {picks!r}: expected a list of candidate indices "
                                f"0..{n_cands - 1}, one per group ({groups})")
