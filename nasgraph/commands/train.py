"""`nasgraph train derived.yaml --out RUN`: train a discrete architecture from scratch."""
from __future__ import annotations

from nasgraph.commands._common import add_device, add_json, add_run_options, add_spec_overrides, print_json

NAME = "train"
HELP = "train a spec without choice points (e.g. a derived spec) from scratch"
ORDER = 5


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file (no choice points)")
    add_spec_overrides(p)
    add_run_options(p)
    add_device(p)
    p.add_argument("--extend", action="store_true", help="with --resume: train a finished or killed run on to a "
                                                          "larger train.steps (the schedule is re-planned)")
    add_json(p, "result.json")


def run(args) -> int:
    from nasgraph import distributed
    from nasgraph.api import train

    trained = train(args.spec, args.out, overrides=args.overrides, resume=args.resume, extend=args.extend,
                    progress=args.progress, force=args.force, device=args.device)
    if not distributed.is_writer():   # torchrun: rank 0 reports
        return 0
    if args.json:
        print_json(trained.to_json())
        return 0
    result = trained.result
    metric = result["metric"]["name"]
    test = f", test {metric} {result['test'][metric]:.4f}" if "test" in result else ""
    print(f"{trained.name}: {result['steps']} steps in {result['seconds']:.0f} s; "
          f"val {metric} {result['val'][metric]:.4f}{test}")
    print(f"wrote {trained.checkpoint}, {trained.report}")
    return 0
