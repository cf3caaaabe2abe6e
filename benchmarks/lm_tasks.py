"""Which attention types solve causal recall (MQAR), and how well does each model local text?

Trains one fixed-type causal model per attention type, the same size and steps for every type:
- mqar: multi-query associative recall (n_pairs key-value pairs, then every key queried); "solved"
  means test answer accuracy >= 0.95 (Zoology's bar);
- lm: byte-level language modelling on a local text file (default: Python sources of the installed
  torch package, concatenated: real text available offline), bits per byte on the test cut.

    .venv/bin/python benchmarks/lm_tasks.py --part mqar --steps 2500 --batch-size 64 --mqar-len 32 \
        --symbols 16 --window 8 --eval-every 250 --types softmax gated_deltanet gated_deltanet:short_conv=4
    .venv/bin/python benchmarks/lm_tasks.py --part lm --steps 400 --lm-len 128 --lr 2e-3
A type may carry options (`name:key=value,key=value`); --seeds runs each at several train seeds;
--set applies spec overrides to every run, as `nasgraph train --set` does (model.position=none,
task.query_gaps=power_law for Zoology's query placement, train.warmup_steps=200). Each row keeps its
wall and process CPU seconds (the CPU figure is the one to compare on a shared machine).
MQAR has a long plateau: a 2-layer softmax model sits at the "some value of the context" level
(~25% answer accuracy with 8 pairs) for ~1100 steps at lr 1e-3 and T=32, 1750 at T=64, ~2100 at
T=128, then solves it within ~250 more; the recurrences without their short convolution sit there
longer, with it they solve it in ~250 steps, at T=256 only without a position table
(--set model.position=none; see the README). Each row keeps its val curve; "first val >= 0.95 at
step" reads it.
Prints a markdown table per part and writes benchmarks/out/lm_tasks_<part><tag>.{md,json}.
Runs split over several processes (one --tag each) are joined into one table by
    .venv/bin/python benchmarks/lm_tasks.py --part lm --tag _all --from-json benchmarks/out/lm_tasks_lm_a.json ...
(refused unless every file has the same part and sizes).
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


def parse_type(entry: str) -> tuple[str, dict]:
    """"gated_deltanet:short_conv=4,chunk=16" -> ("gated_deltanet", {"short_conv": 4, "chunk": 16})."""
    name, _, rest = entry.partition(":")
    options = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in rest.split(",") if item)}
    return name, options


def slug(entry: str) -> str:
    return entry.replace(":", "-").replace("=", "").replace(",", "-")


def type_options(entry: str, args) -> dict:
    """The entry's own options; local and sliding_window also get --window."""
    name, options = parse_type(entry)
    return {"window": args.window, **options} if name in ("local", "sliding_window") else options


def task_for(part: str, args) -> dict:
    if part == "mqar":
        return {"kind": "mqar", "max_len": args.mqar_len, "n_pairs": args.pairs, "n_keys": args.symbols,
                "n_values": args.symbols, "n_train": args.steps * args.batch_size, "n_val": 256, "n_test": 512}
    return {"kind": "lm", "path": str(args.text or default_text(args.text_bytes)), "max_len": args.lm_len,
            "max_bytes": args.text_bytes}


def spec_for(part: str, kind: str, args, seed: int = 0) -> dict:
    name, options = parse_type(kind)[0], type_options(kind, args)
    candidate = {name: options} if options else name
    return {"name": f"{part}-{slug(kind)}", "task": task_for(part, args),
            "model": {"d_model": args.d_model, "n_heads": args.heads, "n_layers": args.layers,
                      "ffn": {"mult": 2}, "attention": candidate},
            "train": {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "weight_decay": 0.0,
                      "warmup_steps": min(100, args.steps // 10), "eval_every": args.eval_every or args.steps,
                      "eval_batches": args.eval_batches, "checkpoint_every": args.steps,
                      "threads": args.threads, "seed": seed}}


def run_one(part: str, kind: str, args, tmp: Path, seed: int = 0) -> dict:
    run_dir = tmp / f"run_{part}_{slug(kind)}_s{seed}"
    path = tmp / f"{part}_{slug(kind)}_s{seed}.yaml"
    path.write_text(yaml.safe_dump(spec_for(part, kind, args, seed), sort_keys=False))
    t0, cpu0 = time.perf_counter(), time.process_time()
    result = run_train(load_spec(path, args.set or ()), run_dir, progress=False)
    curve = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    curve = [{k: r[k] for k in ("step", "loss", "acc") if k in r} for r in curve if r.get("split") == "val"]
    row = {"type": parse_type(kind)[0], "seed": seed, "options": type_options(kind, args),
           "seconds": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
           "params": result["params"], "test": result["test"],
           "val": result["val"], "val_curve": curve}
    print(json.dumps(row), flush=True)
    return row


def label(row: dict) -> str:
    return row["type"] + "".join(f"({k}={v})" for k, v in row["options"].items())


def first_solved(row: dict) -> int | None:
    """The first evaluated step whose val answer accuracy reached SOLVED (None: never)."""
    return next((r["step"] for r in row["val_curve"] if r["acc"] >= SOLVED), None)


def by_type(rows: list[dict]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(label(r), []).append(r)
    return groups


def spent(rows: list[dict]) -> str:
    """Wall seconds of each run, with its process CPU seconds (the load-independent figure) when known."""
    return " / ".join(f"{r['seconds']:.0f}" + (f" ({r['cpu_s']:.0f})" if "cpu_s" in r else "") for r in rows)


def render(part: str, rows: list[dict], args) -> str:
    groups = by_type(rows)
    seeds = "/".join(str(s) for s in args.seeds)
    if part == "mqar":
        head = ["type", f"test answer acc (seed {seeds})", "solved (>= 0.95)", "first val >= 0.95 at step",
                "test loss", "train s (CPU s)"]
        order = sorted(groups, key=lambda k: -min(r["test"]["answer_acc"] for r in groups[k]))
        body = [[k, " / ".join(f"{r['test']['answer_acc']:.3f}" for r in groups[k]),
                 f"{sum(r['test']['answer_acc'] >= SOLVED for r in groups[k])}/{len(groups[k])}",
                 " / ".join(str(first_solved(r) or "-") for r in groups[k]),
                 " / ".join(f"{r['test']['loss']:.2f}" for r in groups[k]),
                 spent(groups[k])] for k in order]
        what = (f"MQAR: {args.pairs} pairs, T={args.mqar_len}, {args.symbols} keys / {args.symbols} values, "
                f"{args.steps} steps x batch {args.batch_size}")
    else:
        head = ["type", f"test bits/byte (seed {seeds})", "val bits/byte", "test perplexity", "train s (CPU s)"]
        order = sorted(groups, key=lambda k: min(r["test"]["bits_per_byte"] for r in groups[k]))
        body = [[k, " / ".join(f"{r['test']['bits_per_byte']:.4f}" for r in groups[k]),
                 " / ".join(f"{r['val']['bits_per_byte']:.4f}" for r in groups[k]),
                 " / ".join(f"{r['test']['perplexity']:.2f}" for r in groups[k]),
                 spent(groups[k])] for k in order]
        what = (f"LM: {args.text or 'torch sources'} ({args.text_bytes} bytes max, 90/5/5), T={args.lm_len}, "
                f"{args.steps} steps x batch {args.batch_size}")
    model = (f"d_model {args.d_model}, {args.heads} heads, {args.layers} layers, lr {args.lr}, "
             f"threads {args.threads}" + (f"; --set {' '.join(args.set)}" if getattr(args, "set", None) else ""))
    return f"{what}; {model}\n\n" + table(body, head, markdown=True) + "\n"


# the settings that must agree for rows of several runs to share one table
SHARED = ("part", "steps", "batch_size", "lr", "d_model", "heads", "layers", "pairs", "mqar_len", "symbols",
          "window", "lm_len", "text", "text_bytes", "threads", "set")


def joined(part: str, paths: list[Path], tag: str) -> tuple[argparse.Namespace, list[dict]]:
    """The rows of several lm_tasks json outputs and their common settings; SystemExit naming the first
    file and setting that differ."""
    runs = [json.loads(path.read_text()) for path in paths]
    first = runs[0]["args"]
    for path, run in zip(paths, runs):
        differ = [k for k in SHARED if run["args"].get(k) != (part if k == "part" else first.get(k))]
        if differ:
            raise SystemExit(f"lm_tasks: {path} differs from {paths[0]} (or --part {part}) in {', '.join(differ)}; "
                             f"only runs with the same settings share a table")
    seeds = sorted({s for run in runs for s in run["args"]["seeds"]})
    args = argparse.Namespace(**{**first, "seeds": seeds, "tag": tag, "types": None})
    return args, [row for run in runs for row in run["rows"]]


def write(part: str, rows: list[dict], args) -> None:
    text = render(part, rows, args)
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / f"lm_tasks_{part}{args.tag}.md").write_text(text)
    (OUT / f"lm_tasks_{part}{args.tag}.json").write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1,
                                                                    default=str))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["mqar", "lm"], required=True)
    p.add_argument("--types", nargs="*", help="attention types, each optionally with options, e.g. "
                   "gated_deltanet:short_conv=4 (default: mqar every causal type; lm softmax linear local)")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--pairs", type=int, default=8)
    p.add_argument("--mqar-len", type=int, default=64)
    p.add_argument("--symbols", type=int, default=64, help="mqar: keys and values (each)")
    p.add_argument("--window", type=int, default=32, help="window of local and sliding_window")
    p.add_argument("--lm-len", type=int, default=128)
    p.add_argument("--text", help="a local text file (default: the installed torch package's sources)")
    p.add_argument("--text-bytes", type=int, default=2_000_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed of each run (model init)")
    p.add_argument("--eval-every", type=int, help="val evaluation interval (default: once, at the end)")
    p.add_argument("--eval-batches", type=int, help="val batches per interval evaluation (default: all)")
    p.add_argument("--set", nargs="+", metavar="KEY=VALUE", help="spec overrides for every run, as `nasgraph "
                   "train --set` (model.position=sinusoidal, train.warmup_steps=200, task.n_queries=4)")
    p.add_argument("--tag", default="", help="suffix of the output files")
    p.add_argument("--from-json", nargs="+", type=Path, help="join these runs' rows into one table (no training)")
    return p


def main() -> None:
    args = parser().parse_args()
    if args.from_json:
        args, rows = joined(args.part, args.from_json, args.tag)
        return write(args.part, rows, args)
    kinds = args.types or (causal_types() if args.part == "mqar" else ["softmax", "linear", "local"])
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [run_one(args.part, kind, args, Path(tmp), seed) for seed in args.seeds for kind in kinds]
    write(args.part, rows, args)


if __name__ == "__main__":
    main()
