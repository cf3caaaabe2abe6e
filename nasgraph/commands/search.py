"""`nasgraph search spec.yaml --out RUN`: find the best attention per layer or per head."""
from __future__ import annotations

from nasgraph.commands._common import add_device, add_json, add_run_options, add_spec_overrides, print_json
from nasgraph.textfmt import cost

NAME = "search"
HELP = "search the spec's choice points with search.strategy and write RUN/derived.yaml"
ORDER = 3


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file with choice points")
    add_spec_overrides(p)
    add_run_options(p)
    add_device(p)
    add_json(p, "search.json")


def run(args) -> int:
    from nasgraph import distributed
    from nasgraph.api import search
    from nasgraph.report import recommendation_lines

    found = search(args.spec, args.out, overrides=args.overrides, resume=args.resume, progress=args.progress,
                   force=args.force, device=args.device)
    if not distributed.is_writer():   # torchrun: rank 0 reports
        return 0
    if args.json:
        print_json(found.to_json())
        return 0
    outcome, rec = found.outcome, found.recommendation
    print("\n".join(recommendation_lines(rec)))
    lo, hi = outcome["cost_range"]
    kind = outcome["cost_kind"]
    print(f"cost of the pick: {cost(outcome['cost'], kind)} (space: {cost(lo, kind)} .. {cost(hi, kind)})")
    print(f"wrote {found.derived} ({'the pick' if rec['confident'] else 'what the search leaned to'}), "
          f"{found.run / 'recommendation.json'}, {found.report}")
    return 0
