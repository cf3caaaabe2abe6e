"""Which attention types solve causal recall (MQAR), and how well does each model local text?

Trains one fixed-type causal model per attention type, the same size and steps for every type:
- mqar: multi-query associative recall (n_pairs key-value pairs, then every key queried); "solved"
  means test answer accuracy >= 0.95 (Zoology's bar);
- lm: byte-level language modelling on a local text file (default: Python sources of the installed
  torch package, concatenated: real text available offline), bits per byte on the test cut.

    .venv/bin/python benchmarks/lm_tasks.py --part mqar --steps 3000 --batch-size 64 --mqar-len 32 \
        --symbols 16 --window 8 --types softmax linear local
    .venv/bin/python benchmarks/lm_tasks.py --part lm --steps 400 --lm-len 128 --lr 2e-3
MQAR has a long plateau: a 2-layer softmax model sits at the "some value of the context" level
(~25% answer accuracy with 8 pairs) for ~1300 steps at lr 1e-3, then solves it within ~700 more;
budgets below ~2000 steps separate nothing.
Prints a markdown table per part and writes benchmarks/out/lm_tasks_<part>.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
import yaml

from nasgraph import attention
from nasgraph.spec import load_spec
from nasgraph.textfmt import table
from nasgraph.training.run import run_train

OUT = Path(__file__).parent / "out"
SOLVED = 0.95


def causal_types() -> list[str]:
    return [n for n in attention.names() if attention.get(n).caps.causal]


def default_text(limit: int) -> Path:
    """Concatenated .py files of the installed torch package, up to `limit` bytes, in a temp file."""
    root = Path(torch.__file__).parent
    out = Path(tempfile.gettempdir()) / f"nasgraph_lm_text_{limit}.txt"
    if out.exists() and out.stat().st_size >= min(limit, 1):
        return out
    chunks, size = [], 0
    for f in sorted(root.rglob("*.py")):
        data = f.read_bytes()
        chunks.append(data)
        size += len(data)
        if size >= limit:
            break
    out.write_bytes(b"".join(chunks)[:limit])
    return out


def type_options(kind: str, args) -> dict:
    """local gets --window; the other types run with their defaults."""
    return {"window": args.window} if kind == "local" else {}


def task_for(part: str, args) -> dict:
    if part == "mqar":
        return {"kind": "mqar", "max_len": args.mqar_len, "n_pairs": args.pairs, "n_keys": args.symbols,
                "n_values": args.symbols, "n_train": args.steps * args.batch_size, "n_val": 256, "n_test": 512}
    return {"kind": "lm", "path": str(args.text or default_text(args.text_bytes)), "max_len": args.lm_len,
            "max_bytes": args.text_bytes}


def spec_for(part: str, kind: str, args) -> dict:
    candidate = {kind: type_options(kind, args)} if type_options(kind, args) else kind
    return {"name": f"{part}-{kind}", "task": task_for(part, args),
            "model": {"d_model": args.d_model, "n_heads": args.heads, "n_layers": args.layers,
                      "ffn": {"mult": 2}, "attention": candidate},
            "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": 0.0,
                      "warmup_steps": min(100, args.steps // 10), "eval_every": args.steps,
                      "checkpoint_every": args.steps, "threads": args.threads}}


def run_one(part: str, kind: str, args, tmp: Path) -> dict:
    path = tmp / f"{part}_{kind}.yaml"
    path.write_text(yaml.safe_dump(spec_for(part, kind, args), sort_keys=False))
    t0 = time.perf_counter()
    result = run_train(load_spec(path), tmp / f"run_{part}_{kind}", progress=False)
    row = {"type": kind, "options": type_options(kind, args), "seconds": round(time.perf_counter() - t0, 1),
           "params": result["params"], "test": result["test"], "val": result["val"]}
    print(json.dumps(row), flush=True)
    return row


def label(row: dict) -> str:
    return row["type"] + "".join(f"({k}={v})" for k, v in row["options"].items())


def render(part: str, rows: list[dict], args) -> str:
    if part == "mqar":
        head = ["type", "test answer acc", "solved (>= 0.95)", "test loss", "train s"]
        body = [[label(r), f"{r['test']['answer_acc']:.4f}", "yes" if r["test"]["answer_acc"] >= SOLVED else "no",
                 f"{r['test']['loss']:.3f}", f"{r['seconds']:.0f}"]
                for r in sorted(rows, key=lambda r: -r["test"]["answer_acc"])]
        what = (f"MQAR: {args.pairs} pairs, T={args.mqar_len}, {args.symbols} keys / {args.symbols} values, "
                f"{args.steps} steps x batch {args.batch_size}")
    else:
        head = ["type", "test bits/byte", "val bits/byte", "test perplexity", "train s"]
        body = [[label(r), f"{r['test']['bits_per_byte']:.4f}", f"{r['val']['bits_per_byte']:.4f}",
                 f"{r['test']['perplexity']:.2f}", f"{r['seconds']:.0f}"]
                for r in sorted(rows, key=lambda r: r["test"]["bits_per_byte"])]
        what = (f"LM: {args.text or 'torch sources'} ({args.text_bytes} bytes max, 90/5/5), T={args.lm_len}, "
                f"{args.steps} steps x batch {args.batch_size}")
    model = f"d_model {args.d_model}, {args.heads} heads, {args.layers} layers, lr {args.lr}, threads {args.threads}"
    return f"{what}; {model}\n\n" + table(body, head, markdown=True) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["mqar", "lm"], required=True)
    p.add_argument("--types", nargs="*", help="attention types (default: mqar every causal type; lm softmax linear local)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--mqar-len", type=int, default=64)
    p.add_argument("--symbols", type=int, default=64, help="mqar: keys and values (each)")
    p.add_argument("--window", type=int, default=32, help="local attention's window")
    p.add_argument("--lm-len", type=int, default=128)
    p.add_argument("--text", help="a local text file (default: the installed torch package's sources)")
    p.add_argument("--text-bytes", type=int, default=2_000_000)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    kinds = args.types or (causal_types() if args.part == "mqar" else ["softmax", "linear", "local"])
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_one(args.part, kind, args, Path(tmp)) for kind in kinds]
    text = render(args.part, rows, args)
    print(text)
    (OUT / f"lm_tasks_{args.part}.md").write_text(text)
    (OUT / f"lm_tasks_{args.part}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
