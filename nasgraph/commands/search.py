"""`nasgraph search spec.yaml --out RUN`: find the best attention per layer or per head."""
from __future__ import annotations

from pathlib import Path

from nasgraph.commands._common import add_run_options, add_spec_overrides
from nasgraph.textfmt import cost

NAME = "search"
HELP = "search the spec's choice points (darts | gdas | fixed) and write RUN/derived.yaml"
ORDER = 3


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file with choice points")
    add_spec_overrides(p)
    add_run_options(p)


def run(args) -> int:
    import json

    from nasgraph.report import recommendation_lines, write_search_report
    from nasgraph.search.run import run_search
    from nasgraph.spec import load_spec

    doc = load_spec(args.spec, args.overrides)
    outcome = run_search(doc, args.out, resume=args.resume, progress=args.progress)
    rec = json.loads((Path(args.out) / "recommendation.json").read_text())
    print("\n".join(recommendation_lines(rec)))
    lo, hi = outcome["cost_range"]
    kind = outcome["cost_kind"]
    print(f"cost of the pick: {cost(outcome['cost'], kind)} (space: {cost(lo, kind)} .. {cost(hi, kind)})")
    report = write_search_report(args.out)
    print(f"wrote {args.out}/derived.yaml ({'the pick' if rec['confident'] else 'what the search leaned to'}), "
          f"{args.out}/recommendation.json, {report}")
    return 0
