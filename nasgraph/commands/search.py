"""`nasgraph search spec.yaml --out RUN`: find the best attention per layer or per head."""
from __future__ import annotations

from nasgraph.commands._common import add_json, add_run_options, add_spec_overrides, print_json
from nasgraph.textfmt import cost, table

NAME = "search"
HELP = "search the spec's choice points (darts | gdas | fixed) and write RUN/derived.yaml"
ORDER = 3


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file with choice points")
    add_spec_overrides(p)
    add_run_options(p)
    add_json(p, "search.json")


def run(args) -> int:
    from nasgraph.api import search

    found = search(args.spec, args.out, overrides=args.overrides, resume=args.resume, progress=args.progress)
    if args.json:
        print_json(found.to_json())
        return 0
    outcome = found.outcome
    rows = [[n, ", ".join(dict.fromkeys(l)) if len(set(l)) == 1 else " | ".join(l)]
            for n, l in outcome["labels"].items()]
    print(table(rows, ["choice point", "pick"]))
    lo, hi = outcome["cost_range"]
    kind = outcome["cost_kind"]
    print(f"\ncost of the pick: {cost(outcome['cost'], kind)} (space: {cost(lo, kind)} .. {cost(hi, kind)}); "
          f"seed agreement {outcome['agreement']:.0%} over {len(outcome['seeds'])} seed(s)")
    if outcome["collapse"]["collapsed"]:
        print(f"note: every choice went to '{outcome['collapse']['dominant']}' (collapse?); see the report")
    print(f"wrote {found.derived}, {found.report}")
    return 0
