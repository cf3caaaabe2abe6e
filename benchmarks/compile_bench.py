"""Compile + instantiate time and peak memory for a 12-layer, 8-head per-head spec with every
registered attention type as a candidate (the largest space the zoo allows).

    .venv/bin/python benchmarks/compile_bench.py [--layers 12 --heads 8 --d-model 256 --max-len 1024]

Writes benchmarks/out/compile_bench.{md,json}. Each phase runs in a fresh subprocess so peak RSS
(ru_maxrss) is the phase's own, not the sum of everything before it.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

OUT = Path(__file__).parent / "out"

PHASE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import torch
from nasgraph import attention
from nasgraph.spec import load_spec
from nasgraph.graph import compile_spec
t_import = time.perf_counter()
doc = load_spec(sys.argv[1])
t_load = time.perf_counter()
g = compile_spec(doc)
t_compile = time.perf_counter()
result = {"import_s": t_import - t0, "load_s": t_load - t_import, "compile_s": t_compile - t_load,
          "nodes": g.number_of_nodes(), "edges": g.number_of_edges()}
if sys.argv[2] == "instantiate":
    from nasgraph.model import GraphModule
    m = GraphModule(g)
    result["instantiate_s"] = time.perf_counter() - t_compile
    result["params"] = sum(p.numel() for p in m.parameters())
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def spec(layers: int, heads: int, d_model: int, max_len: int) -> dict:
    from nasgraph import attention

    return {"name": f"compile-bench-{layers}x{heads}",
            "task": {"kind": "listops", "max_len": max_len, "min_len": 20, "max_depth": 3},
            "model": {"d_model": d_model, "n_heads": heads, "n_layers": layers,
                      "attention": {"granularity": "head",  # the non-causal model: types that have that form
                                    "candidates": [n for n in attention.names() if attention.get(n).caps.noncausal]}}}


def phase(path: Path, what: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PHASE, str(path), what], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--max-len", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data = spec(args.layers, args.heads, args.d_model, args.max_len)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(yaml.safe_dump(data))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "nasgraph", "compile", str(path), "--json"], check=True,
                       capture_output=True)
        cli_s = time.perf_counter() - t0
        runs = [phase(path, "instantiate") for _ in range(args.repeats)]
        baseline = phase(path, "compile")
    best = {k: min(r[k] for r in runs) for k in ("load_s", "compile_s", "instantiate_s")}
    n_cand = len(data["model"]["attention"]["candidates"])
    result = {"layers": args.layers, "heads": args.heads, "d_model": args.d_model, "max_len": args.max_len,
              "candidates": n_cand, "space_size": f"{n_cand}^{args.layers * args.heads}",
              "nodes": runs[0]["nodes"], "edges": runs[0]["edges"], "params": runs[0]["params"],
              **{k: round(v, 4) for k, v in best.items()},
              "peak_rss_mb_compile": round(baseline["peak_rss_mb"], 1),
              "peak_rss_mb_instantiate": round(max(r["peak_rss_mb"] for r in runs), 1),
              "cli_compile_with_flops_s": round(cli_s, 2)}
    OUT.mkdir(exist_ok=True)
    (OUT / "compile_bench.json").write_text(json.dumps(result, indent=1))
    md = ["| metric | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in result.items()]
    (OUT / "compile_bench.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
