"""`nasgraph search spec.yaml --out RUN`: find the best attention per layer or per head."""
from __future__ import annotations

from nasgraph.commands._common import add_run_options, add_spec_overrides
from nasgraph.textfmt import cost, table

NAME = "search"
HELP = "search the spec's choice points (darts | gdas | fixed) and write RUN/derived.yaml"
ORDER = 3


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file with choice points")
    add_spec_overrides(p)
    add_run_options(p)


def run(args) -> int:
    from nasgraph.report import write_search_report
    from nasgraph.search.run import run_search
    from nasgraph.spec import load_spec

    doc = load_spec(args.spec, args.overrides)
    doc.force = args.force
    outcome = run_search(doc, args.out, resume=args.resume, progress=args.progress)
    rows = [[n, ", ".join(dict.fromkeys(l)) if len(set(l)) == 1 else " | ".join(l)]
            for n, l in outcome["labels"].items()]
    print(table(rows, ["choice point", "pick"]))
    lo, hi = outcome["cost_range"]
    kind = outcome["cost_kind"]
    print(f"\ncost of the pick: {cost(outcome['cost'], kind)} (space: {cost(lo, kind)} .. {cost(hi, kind)}); "
          f"seed agreement {outcome['agreement']:.0%} over {len(outcome['seeds'])} seed(s)")
    if outcome["collapse"]["collapsed"]:
        print(f"note: every choice went to '{outcome['collapse']['dominant']}' (collapse?); see the report")
    report = write_search_report(args.out)
    print(f"wrote {args.out}/derived.yaml, {report}")
    return 0
