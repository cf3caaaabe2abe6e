"""`nasgraph eval RUN`: accuracy and loss of a trained run on a split."""
from __future__ import annotations

NAME = "eval"
HELP = "evaluate a trained run's checkpoint on a split"
ORDER = 6


def add_arguments(p) -> None:
    p.add_argument("run", help="a train run folder")
    p.add_argument("--split", default="test", help="train | val | test (default test)")


def format_metrics(r: dict) -> str:
    """acc 0.9125, loss 0.3012[, bits_per_byte 2.1, perplexity 4.3] on 512 labelled examples/positions."""
    extra = "".join(f", {k} {v:.4f}" for k, v in r.items() if k not in ("acc", "loss", "n", "answer_acc"))
    return f"acc {r['acc']:.4f}, loss {r['loss']:.4f}{extra} on {r['n']} labelled examples/positions"


def run(args) -> int:
    from nasgraph.training.run import run_eval

    r = run_eval(args.run, args.split)
    print(f"{args.split}: {format_metrics(r)}")
    return 0
