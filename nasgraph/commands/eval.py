"""`nasgraph eval RUN`: accuracy and loss of a trained run on a split."""
from __future__ import annotations

NAME = "eval"
HELP = "evaluate a trained run's checkpoint on a split"
ORDER = 6


def add_arguments(p) -> None:
    p.add_argument("run", help="a train run folder")
    p.add_argument("--split", default="test", help="train | val | test (default test)")


def run(args) -> int:
    from nasgraph.training.run import run_eval

    r = run_eval(args.run, args.split)
    print(f"{args.split}: acc {r['acc']:.4f}, loss {r['loss']:.4f} on {r['n']} examples")
    return 0
