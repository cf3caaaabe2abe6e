"""`nasgraph train derived.yaml --out RUN`: train a discrete architecture from scratch."""
from __future__ import annotations

from nasgraph.commands._common import add_run_options, add_spec_overrides

NAME = "train"
HELP = "train a spec without choice points (e.g. a derived spec) from scratch"
ORDER = 5


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file (no choice points)")
    add_spec_overrides(p)
    add_run_options(p)


def run(args) -> int:
    from nasgraph.report import write_train_report
    from nasgraph.spec import load_spec
    from nasgraph.training.run import run_train

    doc = load_spec(args.spec, args.overrides)
    doc.force = args.force
    result = run_train(doc, args.out, resume=args.resume, progress=args.progress)
    test = f", test acc {result['test']['acc']:.4f}" if "test" in result else ""
    print(f"{doc.spec.name}: {result['steps']} steps in {result['seconds']:.0f} s; "
          f"val acc {result['val']['acc']:.4f}{test}")
    print(f"wrote {args.out}/checkpoints/last.pt, {write_train_report(args.out)}")
    return 0
