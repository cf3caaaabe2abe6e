"""`nasgraph eval RUN`: accuracy and loss of a trained run on a split."""
from __future__ import annotations

from nasgraph.commands._common import add_json, print_json

NAME = "eval"
HELP = "evaluate a trained run's checkpoint on a split"
ORDER = 6


def add_arguments(p) -> None:
    p.add_argument("run", help="a train run folder")
    p.add_argument("--split", default="test", help="train | val | test (default test)")
    add_json(p, "run, split, acc, loss, n")


def run(args) -> int:
    from nasgraph.api import evaluate

    r = evaluate(args.run, args.split)
    if args.json:
        print_json(r.to_json())
    else:
        print(f"{r.split}: acc {r.acc:.4f}, loss {r.loss:.4f} on {r.n} examples")
    return 0
