"""Does the search find the right attention, and at what cost?

For each task (ListOps in the regime that separates types on CPU, and multi-query associative
recall): train every candidate standalone (homogeneous) for the same budget and rank them; run each
search strategy on the supernet of all candidates; report each strategy's pick, its rank in the
standalone ranking, and the search cost as a multiple of one standalone training. Also times the
supernet step against the sum of its candidates' steps, and a GDAS step against the costliest one.

    .venv/bin/python benchmarks/search_listops.py --steps 1500 --seeds 0 1
Writes benchmarks/out/search_<task>.{md,json}.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
import yaml

from nasgraph import tasks
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.search.run import run_search
from nasgraph.search.strategies import get as get_strategy
from nasgraph.spec import load_spec
from nasgraph.tasks.listops import majority_baseline, root_operator_baseline
from nasgraph.training.data import BatchStream
from nasgraph.training.run import run_train

OUT = Path(__file__).parent / "out"
TASKS = {
    "listops": {"kind": "listops", "max_len": 101, "min_len": 20, "max_depth": 3, "n_train": 200_000,
                "n_val": 2000, "n_test": 2000},
    "assoc_recall": {"kind": "assoc_recall", "max_len": 64, "n_pairs": 4, "n_keys": 8, "n_values": 4,
                     "n_train": 50_000, "n_val": 2000, "n_test": 2000},
}


def base_spec(task: dict, candidates: list, args, **search) -> dict:
    return {"name": "bench", "task": task,
            "model": {"d_model": 64, "n_heads": 4, "n_layers": 2, "ffn": {"mult": 2},
                      "attention": {"granularity": "layer", "candidates": candidates}},
            "search": {"seeds": [0], **search},
            "train": {"steps": args.steps, "batch_size": 32, "lr": 1e-3, "eval_every": max(1, args.steps // 4),
                      "checkpoint_every": args.steps, "threads": args.threads}}


def load(tmp: Path, data: dict, name: str):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_spec(path)


def step_time(model, stream, n: int, arch=None) -> float:
    """Median seconds of a weight step (forward, backward, AdamW) over n steps after 3 warm-up steps."""
    opt = torch.optim.AdamW(model.weight_parameters(), lr=1e-3)
    times = []
    for i in range(n + 3):
        x, y = stream.next()
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def step_times(tmp: Path, task: dict, candidates: list, args) -> dict:
    doc = load(tmp, base_spec(task, candidates, args), "steps")
    graph = compile_spec(doc)
    split = tasks.load_task(tasks.parse_task({**task, "n_train": 4000, "n_val": 10, "n_test": 10})).splits["train"]
    out = {}
    for c in candidates:
        single = compile_spec(load(tmp, base_spec(task, [c], args), "single"))
        out[c if isinstance(c, str) else next(iter(c))] = step_time(GraphModule(single), BatchStream(split, 32, 0), args.timing_steps)
    out["supernet"] = step_time(GraphModule(graph), BatchStream(split, 32, 0), args.timing_steps)
    gdas, supernet = get_strategy("gdas")(doc.spec.search, 100), GraphModule(graph)
    gdas.attach(supernet)
    out["gdas"] = step_time(supernet, BatchStream(split, 32, 0), args.timing_steps)
    return out


def run_task(name: str, args, tmp: Path) -> dict:
    task = {**TASKS[name], **({"n_train": args.n_train} if args.n_train else {})}
    cands = [c if isinstance(c, str) else c for c in args.candidates]
    standalone = {}
    for c in cands:
        label = c if isinstance(c, str) else next(iter(c))
        for seed in args.seeds:
            spec = base_spec(task, [c], args)
            spec["train"]["seed"] = seed
            r = run_train(load(tmp, spec, f"{label}{seed}"), tmp / f"{name}-{label}-{seed}", progress=args.progress)
            standalone.setdefault(label, []).append({"seed": seed, "val": r["val"]["acc"], "test": r["test"]["acc"],
                                                     "seconds": r["seconds"]})
            print(f"[{name}] standalone {label} seed {seed}: test {r['test']['acc']:.4f} in {r['seconds']:.0f} s", flush=True)
    ranking = sorted(standalone, key=lambda l: -statistics.mean(x["test"] for x in standalone[l]))
    one_training = statistics.mean(x["seconds"] for runs in standalone.values() for x in runs)
    searches = {}
    for strategy in args.strategies:
        for seed in args.seeds:
            extra = {"strategy": strategy, "steps": int(args.steps * args.search_fraction)}
            if strategy in ("darts", "gdas"):     # options of the strategies that learn alphas
                extra.update(alpha_lr=3e-3, arch_every=args.arch_every)
            spec = base_spec(task, cands, args, **extra)
            spec["search"]["seeds"] = [seed]
            t0 = time.perf_counter()
            outcome = run_search(load(tmp, spec, f"{strategy}{seed}"), tmp / f"{name}-{strategy}-{seed}",
                                 progress=args.progress)
            seconds = time.perf_counter() - t0
            picks = [l.split("(")[0] for ls in outcome["labels"].values() for l in ls]
            ranks = sorted({ranking.index(p) + 1 for p in picks})
            searches.setdefault(strategy, []).append({"seed": seed, "pick": outcome["labels"], "ranks": ranks,
                                                      "top2": max(ranks) <= 2, "seconds": seconds,
                                                      "cost_x": seconds / one_training})
            print(f"[{name}] {strategy} seed {seed}: pick {outcome['labels']} ranks {ranks} "
                  f"cost {seconds / one_training:.2f}x", flush=True)
    result = {"task": task, "steps": args.steps, "search_fraction": args.search_fraction, "seeds": args.seeds,
              "arch_every": args.arch_every,
              "standalone": standalone, "ranking": ranking, "one_training_s": one_training, "search": searches,
              "step_times_s": step_times(tmp, task, cands, args)}
    if name == "listops":
        test = tasks.load_task(tasks.parse_task(task)).splits
        result["baselines"] = {"root_operator": root_operator_baseline(test["test"]),
                               "majority": majority_baseline(test["test"], test["train"])}
    return result


def markdown(name: str, r: dict) -> str:
    st = r["step_times_s"]
    cands = [k for k in st if k not in ("supernet", "gdas")]
    lines = [f"### {name}: {r['steps']} steps, batch 32, seeds {r['seeds']}", "",
             "| candidate (standalone) | rank | test acc (mean) | per seed | seconds |", "|---|---|---|---|---|"]
    for i, l in enumerate(r["ranking"]):
        runs = r["standalone"][l]
        per_seed = ", ".join(f"{x['test']:.4f}" for x in runs)
        lines.append(f"| {l} | {i + 1} | {statistics.mean(x['test'] for x in runs):.4f} | {per_seed} | "
                     f"{statistics.mean(x['seconds'] for x in runs):.0f} |")
    if "baselines" in r:
        lines += ["", f"Baselines: root-operator rule {r['baselines']['root_operator']:.4f}, "
                      f"majority class {r['baselines']['majority']:.4f}."]
    lines += ["", "| strategy | seed | pick (per layer) | ranks | top-2 | cost (x one training, search steps = "
                  f"{r['search_fraction']:g} x, alpha step every {r.get('arch_every', 1)}) |", "|---|---|---|---|---|---|"]
    for s, runs in r["search"].items():
        for x in runs:
            pick = "; ".join(",".join(v) for v in x["pick"].values())
            lines.append(f"| {s} | {x['seed']} | {pick} | {x['ranks']} | {'yes' if x['top2'] else 'no'} | {x['cost_x']:.2f} |")
    total = sum(st[c] for c in cands)
    lines += ["", "Step time (median, ms): " + ", ".join(f"{c} {st[c] * 1e3:.1f}" for c in cands)
              + f"; supernet {st['supernet'] * 1e3:.1f} = **{st['supernet'] / total:.2f}x** the sum of candidates "
                f"(target <= 0.85x); GDAS {st['gdas'] * 1e3:.1f} = **{st['gdas'] / max(st[c] for c in cands):.2f}x** "
                f"the costliest candidate (target <= 1.2x)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", nargs="+", default=["listops", "assoc_recall"], choices=list(TASKS))
    ap.add_argument("--steps", type=int, default=1500, help="standalone training steps (batch 32)")
    ap.add_argument("--search-fraction", type=float, default=1.0, help="search steps as a fraction of --steps")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--candidates", nargs="+", default=["softmax", "linear", "local"])
    ap.add_argument("--strategies", nargs="+", default=["darts", "gdas", "fixed"])
    ap.add_argument("--arch-every", type=int, default=1, help="one alpha step every N weight steps")
    ap.add_argument("--n-train", type=int, help="override the task's training-set size")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--timing-steps", type=int, default=30)
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args()
    args.candidates = [{"local": {"window": 16}} if c == "local" else c for c in args.candidates]
    OUT.mkdir(exist_ok=True)
    for name in args.tasks:
        with tempfile.TemporaryDirectory() as tmp:
            r = run_task(name, args, Path(tmp))
        (OUT / f"search_{name}.json").write_text(json.dumps(r, indent=1))
        (OUT / f"search_{name}.md").write_text(markdown(name, r))
        print(markdown(name, r))


if __name__ == "__main__":
    main()
