"""Where a derived model's time goes in ONNX Runtime and in PyTorch eager, op type by op type.

For each (spec, attention candidate) derived model of `deploy_latency.py` (random weights, the
unpadded graph, batch 1, 1 thread): ORT's own profiler (per-node kernel time, the minimum over the
profiled runs, summed by op type) next to the torch profiler's self CPU time per aten op (minimum
over runs). Profiling slows both runtimes; the per-op-type shares and the order are the useful part,
and the two totals are each runtime's un-profiled CPU time per call (same run, alternating).

Writes benchmarks/out/deploy_latency_profile.{md,json}.
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/deploy_latency_profile.py \
        --specs text_bytes --attention local --lens 2048
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.deploy_latency import SPECS, derived_models  # noqa: E402
from exporters.bench import export_twin  # noqa: E402
from exporters.latency import LatencyResult, ort_latency, torch_latency  # noqa: E402
from exporters.bench_subjects import EagerLogits  # noqa: E402
from exporters.model_export import unpadded_path  # noqa: E402
from exporters.runtime import DISABLED_OPTIMIZERS, make_session  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def ort_profile(path: Path, feeds: dict, runs: int) -> dict[str, float]:
    """ms per op type: each node's least kernel time over `runs` profiled runs, summed by op type."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix(""))
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"],
                                disabled_optimizers=list(DISABLED_OPTIMIZERS))
    for _ in range(2 + runs):
        sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_node: dict[tuple[str, str], float] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            key = (e["name"], e["args"]["op_name"])
            per_node[key] = min(per_node.get(key, float("inf")), e["dur"] / 1e3)
    per_op: dict[str, float] = defaultdict(float)
    for (_, op), ms in per_node.items():
        per_op[op] += ms
    return dict(sorted(per_op.items(), key=lambda kv: -kv[1]))


def torch_profile(module, inputs, runs: int) -> dict[str, float]:
    """ms per aten op: self CPU time per call, the least over `runs` profiled calls."""
    from torch.profiler import ProfilerActivity, profile

    best: dict[str, float] = {}
    with torch.no_grad():
        module(*inputs)
        for _ in range(runs):
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                module(*inputs)
            per_op: dict[str, float] = defaultdict(float)
            for e in prof.key_averages():
                per_op[e.key] += e.self_cpu_time_total / 1e3
            for k, v in per_op.items():
                best[k] = min(best.get(k, float("inf")), v)
    return dict(sorted(((k, v) for k, v in best.items() if v > 0), key=lambda kv: -kv[1]))


def profile_model(spec, label, doc, model, T: int, runs: int, work: Path) -> dict:
    torch.set_num_threads(1)
    path = unpadded_path(export_twin(doc, model, work / f"{spec}-{label}.onnx".replace("/", "_")))
    tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T))
    module, feeds = EagerLogits(model), {"tokens": tokens.numpy()}
    sess = make_session(path, threads=1)
    eager, ort = [], []
    for i in range(3):
        eager.append(torch_latency(module, (tokens,), threads=1, warmup=2 if i == 0 else 1, repeats=3))
        ort.append(ort_latency(sess, feeds, warmup=2 if i == 0 else 1, repeats=3))
    e, o = LatencyResult.combine(eager).stats, LatencyResult.combine(ort).stats
    row = {"spec": spec, "attention": label, "T": T, "eager_cpu_ms": e.cpu_p50_ms, "ort_cpu_ms": o.cpu_p50_ms,
           "ratio_cpu": o.cpu_p50_ms / e.cpu_p50_ms, "ort_ops": ort_profile(path, feeds, runs),
           "eager_ops": torch_profile(module, (tokens,), runs)}
    print(f"{spec} {label} T={T}: CPU eager {e.cpu_p50_ms:.2f} ms, ORT {o.cpu_p50_ms:.2f} ms "
          f"(ratio {row['ratio_cpu']:.2f})", flush=True)
    for side in ("ort_ops", "eager_ops"):
        total = sum(row[side].values())
        print(f"  {side}: total {total:.2f} ms: " + ", ".join(f"{k} {v:.2f}" for k, v in list(row[side].items())[:10]))
    return row


def markdown(rows, load) -> str:
    lines = ["# Per-op-type time, ORT (profiler, least per node) vs eager (torch profiler, self CPU)", "",
             f"1 thread, batch 1, the unpadded graph; load average {load[0]:.1f} -> {load[1]:.1f}. "
             "Profiled times are inflated by profiling; the CPU-time columns are un-profiled p50s.", "",
             "| spec | attention | T | CPU eager / ORT ms (ratio) | ORT top ops (ms) | eager top ops (ms) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        top = lambda ops: ", ".join(f"{k.replace('aten::', '')} {v:.2f}" for k, v in list(ops.items())[:8])  # noqa: E731
        lines.append(f"| {r['spec']} | {r['attention']} | {r['T']} | {r['eager_cpu_ms']:.2f} / {r['ort_cpu_ms']:.2f} "
                     f"({r['ratio_cpu']:.2f}) | {top(r['ort_ops'])} | {top(r['eager_ops'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--attention", default="", help="only these candidates, comma-separated labels")
    ap.add_argument("--lens", default="2048")
    ap.add_argument("--runs", type=int, default=5, help="profiled runs per runtime (least time kept)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    opts = ap.parse_args()
    lens = [int(t) for t in opts.lens.split(",")]
    load0, rows = os.getloadavg()[0], []
    with tempfile.TemporaryDirectory(prefix="deploy_profile_") as tmp:
        for spec in opts.specs.split(","):
            for label, doc, model in derived_models(spec, max(lens)):
                if opts.attention and label not in opts.attention.split(","):
                    continue
                rows += [profile_model(spec, label, doc, model, T, opts.runs, Path(tmp)) for T in lens]
    load = (load0, os.getloadavg()[0])
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "deploy_latency_profile.json").write_text(json.dumps({"load_avg": load, "rows": rows}, indent=1))
    md = markdown(rows, load)
    (opts.out / "deploy_latency_profile.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
