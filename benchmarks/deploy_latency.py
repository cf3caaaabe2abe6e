"""Deploy latency of the example specs' derived models: ONNX Runtime vs PyTorch eager, plus how close
softmax attention gets to this machine's large-matmul throughput.

For each example spec (specs/*.yaml) and each candidate of its choice points, the derived model with
every choice point resolved to that candidate (nasgraph.search.derive.derive_spec) is built with
seeded random weights (latency does not depend on their values) and task.max_len raised to the
longest T, exported like `nasgraph export` (dynamo, opset 18, dynamic batch and seq, padded and
unpadded graphs, parity-checked), and timed at batch 1 (no padding: the unpadded graph, as
`nasgraph predict` picks it; softmax on ORT's flash MultiHeadAttention, causal softmax on its causal
GroupQueryAttention), T in {128, 512, 2048}, CPU,
2 and 1 threads: ORT and eager alternate in rounds so a busy machine slows both alike. Eager is
model(tokens), which builds the padding mask (causal softmax then adds a (T, T) bias; without a mask it
would call SDPA is_causal, benchmarks/deploy_causal_attention.py). Target: ORT
p50 <= 0.8 x eager p50. Each row records the kernel path of each attention layer.

Then the achieved GFLOP/s of a softmax attention layer at T=2048 without mask (eager SDPA and ORT's
MultiHeadAttention; FLOPs from nasgraph.flops, which counts a multiply-add as 1, so GFLOP/s here =
GMAC/s) against 1024^3/2048^3 matmuls (torch and ORT) timed in the same run; and int8 (dynamic
quantization of the unpadded graph) against fp32 at T=512 (--int8-len). `deploy_latency_explain.py`
holds the investigation of misses.

Writes benchmarks/out/deploy_latency.{md,json}.
    .venv/bin/python benchmarks/deploy_latency.py                         # everything (~25 min, 2 cores)
    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/deploy_latency.py # on a shared, busy machine
    .venv/bin/python benchmarks/deploy_latency.py --specs listops_homogeneous --lens 128,512 --repeats 6

On an oversubscribed machine libgomp's spinning barriers make multi-threaded eager runs 10-100x slower
(a descheduled thread stalls every parallel region); OMP_WAIT_POLICY=PASSIVE removes most of that, so
use it there and read the header's load average before trusting a ratio. With 1 thread every point
also has the ratio of the calling thread's CPU time (both runtimes compute on that thread): the work
of a call without the time slices other processes took, steadier on a shared machine (+-10%); at
more threads, the ratio of the process's CPU time (all threads' work). The report judges the target
on these. The int8 section times two schemes: weights only (the export's) and weights plus the
activation-by-activation MatMuls. The GMAC/s section is in deploy_latency_peak.py, the report in
deploy_latency_report.py, per-op profiles in deploy_latency_profile.py.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from benchmarks.deploy_latency_peak import matmul_peak, softmax_efficiency, timed  # noqa: E402
from benchmarks.deploy_latency_report import TARGET, markdown  # noqa: E402
from exporters.bench import export_twin  # noqa: E402
from exporters.fused_attention import attention_kernels  # noqa: E402
from exporters.latency import LatencyResult, env_fingerprint, ort_latency  # noqa: E402
from exporters.model_export import LogitsFromTokens, unpadded_path  # noqa: E402
from exporters.quantize import quantize_int8  # noqa: E402
from exporters.runtime import make_session, op_counts, spinning_default  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["listops_homogeneous", "listops_heterogeneous", "mixformer", "text_bytes", "lm_bytes", "mqar"]


def derived_models(spec_name: str, max_len: int, overrides: tuple[str, ...] = ()):
    """(candidate label, doc, model) per candidate: every choice point resolved to that candidate;
    `overrides` are spec settings ("model.d_model=256") applied before deriving."""
    from nasgraph.graph import compile_spec
    from nasgraph.search.derive import derive_spec
    from nasgraph.spec import dump_spec, load_spec
    from nasgraph.training.run import build_discrete

    # batch 1: nothing is trained here, so the memory check must not judge a training batch at max_len
    doc = load_spec(ROOT / "specs" / f"{spec_name}.yaml", [f"task.max_len={max_len}", "train.batch_size=1", *overrides])
    graph = compile_spec(doc)
    points = {n: d for n, d in graph.nodes(data=True) if d.get("choice")}
    labels = list(dict.fromkeys(l for d in points.values() for l in d["candidates"]))
    for label in labels:
        if not all(label in d["candidates"] for d in points.values()):
            continue
        groups = {n: graph.graph["ctx"]["n_heads"] if d["granularity"] == "head" else 1 for n, d in points.items()}
        choice = {n: [d["candidates"].index(label)] * groups[n] for n, d in points.items()}
        with tempfile.TemporaryDirectory() as tmp:
            derived = load_spec(dump_spec(derive_spec(doc.raw, graph, choice), Path(tmp) / "derived.yaml"))
        torch.manual_seed(0)
        _, model = build_discrete(derived)
        yield label, derived, model.eval()


PASSIVE = not spinning_default()


def session(path: Path, threads: int, optimized: Path | None = None):
    """make_session's settings (sequential, intra-op threads, graph_opt all, passive when OpenMP is)."""
    return make_session(path, threads=threads, optimized_model_path=optimized)


def bench_model(spec_name, label, doc, model, lens, opts, work: Path) -> list[dict]:
    path = unpadded_path(export_twin(doc, model, work / f"{spec_name}-{label}.onnx".replace("/", "_")))
    kernels = attention_kernels(path)
    rows = []
    for threads in opts.threads:
        sess = session(path, threads, work / "opt.onnx")
        exported, optimized = op_counts(path), op_counts(work / "opt.onnx")
        for T in lens:
            tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T))
            eager, ort = timed(LogitsFromTokens(model), (tokens,), sess, {"tokens": tokens.numpy()},
                               threads, opts.repeats, opts.rounds, opts.budget_s)
            rows.append({"spec": spec_name, "attention": label, "T": T, "threads": threads, "eager": eager.row(),
                         "ort": ort.row(), "ratio": ort.stats.p50_ms / eager.stats.p50_ms,
                         "ratio_min": ort.stats.min_ms / eager.stats.min_ms, "ratio_cpu": cpu_ratio(eager, ort, threads),
                         "ratio_proc": proc_ratio(eager, ort),
                         "graph": "unpadded", "kernels": kernels,
                         "ops": {k: v for k, v in exported.items() if k in ("Einsum", "CumSum", "Softmax", "MatMul")},
                         "fused": sorted(k for k in optimized if "." in k)})
            cpu, proc = rows[-1]["ratio_cpu"], rows[-1]["ratio_proc"]
            print(f"{spec_name:22s} {label:18s} {threads}t T={T:5d} eager {eager.stats.p50_ms:9.3f} ms  ORT "
                  f"{ort.stats.p50_ms:9.3f} ms  ratio {rows[-1]['ratio']:.2f} (min {rows[-1]['ratio_min']:.2f}"
                  + (f", cpu {cpu:.2f}" if cpu else "") + (f", proc {proc:.2f})" if proc else ")"), flush=True)
    if opts.int8_len:
        rows[-1]["int8"] = int8_point(path, model, opts, work)
    return rows


def cpu_ratio(eager: LatencyResult, ort: LatencyResult, threads: int) -> float | None:
    """ORT / eager of the calling thread's CPU time p50: with 1 thread the work of a call, which
    other processes on a shared machine do not inflate (None for more threads: helpers not counted)."""
    if threads != 1 or not eager.stats.cpu_p50_ms or not ort.stats.cpu_p50_ms:
        return None
    return ort.stats.cpu_p50_ms / eager.stats.cpu_p50_ms


def proc_ratio(eager: LatencyResult, ort: LatencyResult) -> float | None:
    """ORT / eager of the process's CPU time p50: all threads' work (idle threads wait passively)."""
    if not eager.stats.proc_p50_ms or not ort.stats.proc_p50_ms:
        return None
    return ort.stats.proc_p50_ms / eager.stats.proc_p50_ms


def int8_point(path: Path, model, opts, work: Path) -> dict:
    """int8 against fp32 at T=opts.int8_len, alternating: "weights" quantizes the MatMuls with constant
    weights (the export's scheme), "all" also the activation-by-activation ones."""
    T, threads = opts.int8_len, opts.single_threads
    tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T)).numpy()
    variants = {"weights": quantize_int8(path, work / "int8.onnx"),
                "all": quantize_int8(path, work / "int8_all.onnx", activations=True)}
    sessions = {"fp32": session(path, threads), **{k: session(q, threads) for k, q in variants.items()}}
    runs: dict[str, list] = {k: [] for k in sessions}
    for i in range(opts.rounds):
        kw = dict(warmup=3 if i == 0 else 1, repeats=max(1, opts.repeats // opts.rounds), budget_s=opts.budget_s / opts.rounds)
        for k, s in sessions.items():
            runs[k].append(ort_latency(s, {"tokens": tokens}, **kw))
    fp32 = LatencyResult.combine(runs["fp32"])
    row = {"T": T, "threads": threads, "fp32_ms": fp32.stats.p50_ms, "fp32_bytes": path.stat().st_size}
    for k, q in variants.items():
        b = LatencyResult.combine(runs[k])
        row[k] = {"int8_ms": b.stats.p50_ms, "ratio": b.stats.p50_ms / fp32.stats.p50_ms, "threads": threads,
                  "ratio_min": b.stats.min_ms / fp32.stats.min_ms, "ratio_cpu": cpu_ratio(fp32, b, threads),
                  "int8_bytes": q.stat().st_size, "act_matmuls": op_counts(q).get("DynamicQuantizeLinear", 0)}
        print(f"    int8 ({k}) T={T} {threads}t: fp32 {fp32.stats.p50_ms:.3f} ms, int8 {b.stats.p50_ms:.3f} ms, ratio "
              f"{row[k]['ratio']:.2f}" + (f" (cpu {row[k]['ratio_cpu']:.2f})" if row[k]["ratio_cpu"] else ""), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--attention", default="", help="only these candidates, comma-separated labels (e.g. softmax)")
    ap.add_argument("--lens", default="128,512,2048")
    ap.add_argument("--threads", default="2,1", help="thread counts, each a full pass (2 = the target setting)")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=6.0, help="cap on timed calls per backend and point")
    ap.add_argument("--no-peak", action="store_true", help="skip the GFLOP/s section")
    ap.add_argument("--int8-len", type=int, default=512, help="T of the int8 vs fp32 comparison (0: skip it)")
    ap.add_argument("--single-threads", type=int, default=1,
                    help="threads of the int8 and GMAC/s sections (1: CPU-time figures beside wall time)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    opts = ap.parse_args()
    opts.lens = [int(t) for t in opts.lens.split(",")]
    opts.threads = [int(t) for t in opts.threads.split(",")]
    load0 = os.getloadavg()[0]
    rows, failures = [], []
    with tempfile.TemporaryDirectory(prefix="deploy_latency_") as tmp:
        work = Path(tmp)
        for spec in opts.specs.split(","):
            for label, doc, model in derived_models(spec, max(opts.lens)):
                if opts.attention and label not in opts.attention.split(","):
                    continue
                try:
                    rows += bench_model(spec, label, doc, model, opts.lens, opts, work)
                except Exception as err:  # noqa: BLE001 - recorded, the others still run
                    traceback.print_exc()
                    failures.append({"spec": spec, "attention": label, "error": f"{type(err).__name__}: {err}"[:400]})
        peak = None if opts.no_peak else matmul_peak(opts.single_threads, work)
        eff = [] if opts.no_peak else softmax_efficiency(opts.single_threads, work, peak)
    env, load = env_fingerprint(), (load0, os.getloadavg()[0])
    opts.out.mkdir(parents=True, exist_ok=True)
    data = {"env": env, "load_avg": load, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "ort_allow_spinning": not PASSIVE, "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(opts).items()},
            "target": TARGET, "rows": rows, "failures": failures, "matmul": peak, "softmax_efficiency": eff,
            "when": time.strftime("%F %T")}
    (opts.out / "deploy_latency.json").write_text(json.dumps(data, indent=1))
    md = markdown(rows, peak, eff, env, opts, load, PASSIVE)
    if failures:
        md += "\nFailures:\n" + "\n".join(f"- {f['spec']} / {f['attention']}: {f['error']}" for f in failures) + "\n"
    (opts.out / "deploy_latency.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
