"""`nasgraph search spec.yaml --out RUN`: find the best attention per layer or per head."""
from __future__ import annotations

import json

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
    p.add_argument("--backend", help="where the search's independent trials run: in-process (default, one after "
                                     "another) or ray (Ray Tune trials, the [ray] extra); sets search.backend")
    p.add_argument("--workers", type=int, help="ray: trials at once (CPUs of the local Ray); sets search.workers")
    p.add_argument("--address", help="ray: connect to a running cluster ('auto', 'host:port') instead of starting "
                                     "a local Ray; sets search.address")
    p.add_argument("--gpus-per-trial", type=float, dest="gpus_per_trial",
                   help="ray: GPUs each trial holds (0.25: four trials share a GPU) and trains on; "
                        "sets search.gpus_per_trial")
    add_json(p, "search.json")


def backend_overrides(args) -> list[str]:
    """--backend/--workers/--address/--gpus-per-trial as spec overrides (checked with the spec; a resume may
    change them)."""
    given = {"backend": args.backend, "workers": args.workers, "address": args.address,
             "gpus_per_trial": args.gpus_per_trial}
    return [f"search.{k}={json.dumps(v)}" for k, v in given.items() if v is not None]


def run(args) -> int:
    from nasgraph import distributed
    from nasgraph.api import search
    from nasgraph.report import recommendation_lines

    found = search(args.spec, args.out, overrides=args.overrides + backend_overrides(args), resume=args.resume,
                   progress=args.progress, force=args.force, device=args.device)
    if not distributed.is_writer():   # torchrun: rank 0 reports
        return 0
    if args.json:
        print_json(found.to_json())
        return 0
    if found.outcome.get("elastic"):
        print(elastic_lines(found))
        return 0
    outcome, rec = found.outcome, found.recommendation
    print("\n".join(recommendation_lines(rec)))
    lo, hi = outcome["cost_range"]
    kind = outcome["cost_kind"]
    print(f"cost of the pick: {cost(outcome['cost'], kind)} (space: {cost(lo, kind)} .. {cost(hi, kind)})")
    print(f"wrote {found.derived} ({'the pick' if rec['confident'] else 'what the search leaned to'}), "
          f"{found.run / 'recommendation.json'}, {found.report}")
    return 0


def elastic_lines(found) -> str:
    """The Pareto front of an elastic search (strategy evolution) from its recommendation.json."""
    from nasgraph.search.elastic_recommend import front_lines

    rec = found.recommendation
    key = rec["cost_kind"]
    lines = [rec["headline"], f"Pareto front ({rec['metric']} on shared weights vs "
                              f"{'latency, predicted and measured' if key == 'latency_ms' else 'FLOPs'}):",
             *("  " + line for line in front_lines(rec)), *(f"note: {w['message']}" for w in rec["warnings"]),
             f"wrote {found.derived} (the pick), {found.run / 'front'}/pointK.yaml (each front point), "
             f"{found.run / 'recommendation.json'}, {found.report}"]
    return "\n".join(lines)
