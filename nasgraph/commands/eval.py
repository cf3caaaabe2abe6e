"""`nasgraph eval RUN`: accuracy and loss of a trained run on a split."""
from __future__ import annotations

from nasgraph.commands._common import add_device, add_json, print_json

NAME = "eval"
HELP = "evaluate a trained run's checkpoint on a split"
ORDER = 6


def add_arguments(p) -> None:
    p.add_argument("run", help="a train run folder")
    p.add_argument("--split", default="test", help="train | val | test (default test)")
    add_device(p)
    add_json(p, "run, split, acc, loss, n and the task's metrics (bits_per_byte, perplexity, answer_acc)")


def format_metrics(r: dict) -> str:
    """acc 0.9125, loss 0.3012[, bits_per_byte 2.1, perplexity 4.3] on 512 labelled examples/positions."""
    extra = "".join(f", {k} {v:.4f}" for k, v in r.items() if k not in ("acc", "loss", "n", "answer_acc"))
    return f"acc {r['acc']:.4f}, loss {r['loss']:.4f}{extra} on {r['n']} labelled examples/positions"


def run(args) -> int:
    from nasgraph.api import evaluate

    r = evaluate(args.run, args.split, device=args.device)
    if args.json:
        print_json(r.to_json())
    else:
        print(f"{r.split}: {format_metrics(r.metrics)}")
    return 0
