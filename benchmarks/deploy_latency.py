"""Deploy latency of the example specs' derived models: ONNX Runtime vs PyTorch eager, plus how close
softmax attention gets to this machine's large-matmul throughput.

For each example spec (specs/*.yaml) and each candidate of its choice points, the derived model with
every choice point resolved to that candidate (nasgraph.search.derive.derive_spec) is built with
seeded random weights (latency does not depend on their values) and task.max_len raised to the
longest T, exported like `nasgraph export` (dynamo, opset 18, dynamic batch and seq, padded and
unpadded graphs, parity-checked), and timed at batch 1 (no padding: the unpadded graph, as
`nasgraph predict` picks it; softmax on ORT's flash MultiHeadAttention), T in {128, 512, 2048}, CPU,
2 and 1 threads: ORT and eager alternate in rounds so a busy machine slows both alike. Target: ORT
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
of a call without the time slices other processes took, steadier on a shared machine (+-10%).
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

from exporters.bench import export_twin  # noqa: E402
from exporters.fused_attention import attention_kernels  # noqa: E402
from exporters.latency import LatencyResult, env_fingerprint, ort_latency, torch_latency  # noqa: E402
from exporters.model_export import LogitsFromTokens, unpadded_path  # noqa: E402
from exporters.quantize import quantize_int8  # noqa: E402
from exporters.runtime import make_session, op_counts, spinning_default  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET = 0.8
SPECS = ["listops_homogeneous", "listops_heterogeneous", "mixformer", "text_bytes"]


def derived_models(spec_name: str, max_len: int):
    """(candidate label, doc, model) per candidate: every choice point resolved to that candidate."""
    from nasgraph.graph import compile_spec
    from nasgraph.search.derive import derive_spec
    from nasgraph.spec import dump_spec, load_spec
    from nasgraph.training.run import build_discrete

    doc = load_spec(ROOT / "specs" / f"{spec_name}.yaml", [f"task.max_len={max_len}"])
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
    """make_session's settings (sequential, intra-op threads, graph_opt all); when torch's OpenMP
    threads are passive (OMP_WAIT_POLICY=PASSIVE), ORT's pool does not spin either, so neither side
    burns a busy machine's cores while waiting."""
    return make_session(path, threads=threads, optimized_model_path=optimized)


def timed(module, inputs, session, feeds, threads: int, repeats: int, rounds: int, budget_s: float):
    """Eager and ORT LatencyResults from alternating rounds, samples pooled."""
    eager, ort = [], []
    per_round = dict(repeats=max(1, repeats // rounds), budget_s=budget_s / rounds)
    for i in range(rounds):
        warm = 3 if i == 0 else 1
        eager.append(torch_latency(module, inputs, threads=threads, warmup=warm, **per_round))
        ort.append(ort_latency(session, feeds, warmup=warm, **per_round))
    return LatencyResult.combine(eager), LatencyResult.combine(ort)


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
                         "graph": "unpadded", "kernels": kernels,
                         "ops": {k: v for k, v in exported.items() if k in ("Einsum", "CumSum", "Softmax", "MatMul")},
                         "fused": sorted(k for k in optimized if "." in k)})
            cpu = rows[-1]["ratio_cpu"]
            print(f"{spec_name:22s} {label:18s} {threads}t T={T:5d} eager {eager.stats.p50_ms:9.3f} ms  ORT "
                  f"{ort.stats.p50_ms:9.3f} ms  ratio {rows[-1]['ratio']:.2f} (min {rows[-1]['ratio_min']:.2f}"
                  + (f", cpu {cpu:.2f})" if cpu else ")"), flush=True)
    if opts.int8_len:
        rows[-1]["int8"] = int8_point(path, model, opts, work)
    return rows


def cpu_ratio(eager: LatencyResult, ort: LatencyResult, threads: int) -> float | None:
    """ORT / eager of the calling thread's CPU time p50: with 1 thread the work of a call, which
    other processes on a shared machine do not inflate (None for more threads: helpers not counted)."""
    if threads != 1 or not eager.stats.cpu_p50_ms or not ort.stats.cpu_p50_ms:
        return None
    return ort.stats.cpu_p50_ms / eager.stats.cpu_p50_ms


def int8_point(path: Path, model, opts, work: Path) -> dict:
    """int8 (dynamic quantization of the unpadded graph) against fp32 at T=opts.int8_len, alternating."""
    q = quantize_int8(path, work / "int8.onnx")
    T, threads = opts.int8_len, opts.single_threads
    tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T)).numpy()
    fp32_s, int8_s = session(path, threads), session(q, threads)
    fp32, int8 = [], []
    for i in range(opts.rounds):
        kw = dict(warmup=3 if i == 0 else 1, repeats=max(1, opts.repeats // opts.rounds), budget_s=opts.budget_s / opts.rounds)
        fp32.append(ort_latency(fp32_s, {"tokens": tokens}, **kw))
        int8.append(ort_latency(int8_s, {"tokens": tokens}, **kw))
    a, b = LatencyResult.combine(fp32), LatencyResult.combine(int8)
    row = {"T": T, "threads": threads, "fp32_ms": a.stats.p50_ms, "int8_ms": b.stats.p50_ms,
           "ratio": b.stats.p50_ms / a.stats.p50_ms, "ratio_min": b.stats.min_ms / a.stats.min_ms,
           "ratio_cpu": cpu_ratio(a, b, threads), "fp32_bytes": path.stat().st_size, "int8_bytes": q.stat().st_size}
    print(f"    int8 T={T} {threads}t: fp32 {a.stats.p50_ms:.3f} ms, int8 {b.stats.p50_ms:.3f} ms, "
          f"ratio {row['ratio']:.2f}" + (f" (cpu {row['ratio_cpu']:.2f})" if row["ratio_cpu"] else ""), flush=True)
    return row


def matmul_peak(threads: int, work: Path, sizes=(1024, 2048)) -> dict:
    """GMAC/s of n x n x n fp32 matmuls in torch and in ORT (one MatMul node): the best size's p50
    and fastest call (short calls are preempted less on a busy machine)."""
    import onnx
    from onnx import TensorProto, helper

    best: dict = {}
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                                  [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
                                  [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
        path = work / "matmul.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
        sess, macs = session(path, threads), n ** 3
        for _ in range(2):  # alternate, so both see the same load
            eager = _torch_fn_latency(lambda: a @ b, threads)
            ort = ort_latency(sess, {"a": a.numpy(), "b": b.numpy()}, warmup=2, repeats=8).stats
            row = {"n": n, "macs": macs, "torch_ms": eager.p50_ms, "ort_ms": ort.p50_ms,
                   "torch_gmacs": macs / eager.p50_ms / 1e6, "ort_gmacs": macs / ort.p50_ms / 1e6,
                   "torch_gmacs_best": macs / eager.min_ms / 1e6, "ort_gmacs_best": macs / ort.min_ms / 1e6}
            if threads == 1:  # the calling thread's CPU time: the work without other processes' share
                row.update(torch_gmacs_cpu=macs / eager.cpu_min_ms / 1e6, ort_gmacs_cpu=macs / ort.cpu_min_ms / 1e6)
            for key in [k for k in row if k.endswith(("gmacs", "gmacs_best", "gmacs_cpu"))]:
                if row[key] > best.get(key, 0):
                    best[key] = row[key]
                    best[key.replace("gmacs", "n")] = n
    best["n"], best["torch_ms"], best["ort_ms"] = max(sizes), None, None
    return best


def _torch_fn_latency(fn, threads: int):
    from exporters.latency import measure, torch_threads

    with torch_threads(threads), torch.no_grad():
        return measure(fn, warmup=2, repeats=8)


def softmax_efficiency(threads: int, work: Path, peak: dict, T: int = 2048) -> list[dict]:
    """Achieved GMAC/s of a softmax attention layer (qkv + SDPA + out) at T without a padding mask
    (batch 1), eager SDPA and ORT's MultiHeadAttention (the unpadded graph's kernel), parity-checked."""
    from exporters.fused_attention import attention_kernels, contrib_translations
    from exporters.latency_table import attention_module
    from exporters.parity import export_verified
    from nasgraph.flops import count_flops

    class Unmasked(torch.nn.Module):
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return self.layer(x, None)                                  # (B, T, D)

    out = []
    for d_model, heads in ((64, 4), (256, 4)):
        torch.manual_seed(0)
        layer = Unmasked(attention_module("softmax", d_model, heads))
        x = torch.randn(1, T, d_model)                                  # (1, T, D)
        macs = count_flops(layer.layer, (x, None)).total
        path, _ = export_verified(layer, (torch.randn(2, 8, d_model),), work / f"softmax{d_model}.onnx",
                                  [(torch.randn(1, 64, d_model),)], input_names=["x"], output_names=["y"],
                                  dynamic_axes={"x": {0: "batch", 1: "seq"}}, translations=contrib_translations(),
                                  overwrite=True)
        sess = session(path, threads)
        eager, ort = timed(layer, (x,), sess, {"x": x.numpy()}, threads, 9, 3, 20.0)
        row = {"d_model": d_model, "heads": heads, "T": T, "macs": macs, "kernels": attention_kernels(path),
               "eager_ms": eager.stats.p50_ms,
               "ort_ms": ort.stats.p50_ms, "eager_gmacs": macs / eager.stats.p50_ms / 1e6,
               "ort_gmacs": macs / ort.stats.p50_ms / 1e6}
        row["eager_of_peak"] = row["eager_gmacs"] / peak["torch_gmacs"]
        row["ort_of_peak"] = row["ort_gmacs"] / peak["ort_gmacs"]
        # fastest calls of both (the least disturbed by other processes on a shared machine)
        row["eager_of_peak_best"] = macs / eager.stats.min_ms / 1e6 / peak["torch_gmacs_best"]
        row["ort_of_peak_best"] = macs / ort.stats.min_ms / 1e6 / peak["ort_gmacs_best"]
        if "torch_gmacs_cpu" in peak:  # 1 thread: least CPU time of each against the matmuls' least
            row["eager_of_peak_cpu"] = macs / eager.stats.cpu_min_ms / 1e6 / peak["torch_gmacs_cpu"]
            row["ort_of_peak_cpu"] = macs / ort.stats.cpu_min_ms / 1e6 / peak["ort_gmacs_cpu"]
        out.append(row)
        print(f"softmax d{d_model} h{heads} T={T}: {macs / 1e9:.2f} GMAC, eager {row['eager_gmacs']:.1f} GMAC/s "
              f"({row['eager_of_peak']:.0%} of matmul), ORT {row['ort_gmacs']:.1f} ({row['ort_of_peak']:.0%})", flush=True)
    return out


def markdown(rows, peak, eff, env, opts, load) -> str:
    lines = ["# Deploy latency: ONNX Runtime vs PyTorch eager p50 (batch 1, CPU)", "",
             f"env {env['hash']}: {env['cpu']}, {env['cores']} cores, torch {env['torch']}, onnxruntime "
             f"{env['onnxruntime']}. Load average {load[0]:.1f} at start, {load[1]:.1f} at end"
             + (" (BUSY MACHINE: timings noisy)" if max(load) > env["cores"] / 2 else "")
             + f". OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset: libgomp spins)')}, ORT "
             f"allow_spinning={'0' if PASSIVE else '1 (default)'}. Target ORT <= "
             f"{TARGET}x eager. Derived models: every choice point resolved to one candidate, random weights, "
             f"task.max_len raised to {max(opts.lens)}; eager and ORT alternate in {opts.rounds} rounds. Cells: "
             "eager p50 / ORT p50 ms (ORT/eager of p50; of the fastest call, which a loaded machine disturbs least; "
             "1 thread: of the calling thread's CPU time p50, the work of a call without other processes' share).",
             ""]
    for threads in opts.threads:
        lines += [f"### {threads} thread(s)", "",
                  "| spec | attention | " + " | ".join(f"T={T}" for T in opts.lens) + " | target met (p50) |",
                  "|---|---|" + "---|" * (len(opts.lens) + 1)]
        keyed = {}
        for r in rows:
            if r["threads"] == threads:
                keyed.setdefault((r["spec"], r["attention"]), {})[r["T"]] = r
        for (spec, label), by_t in keyed.items():
            cells = [(f"{by_t[T]['eager']['p50_ms']:.3g} / {by_t[T]['ort']['p50_ms']:.3g} "
                      f"({by_t[T]['ratio']:.2f}; {by_t[T]['ratio_min']:.2f}{_cpu_cell(by_t[T])})" if T in by_t else "error")
                     for T in opts.lens]
            met = all(T in by_t and by_t[T]["ratio"] <= TARGET for T in opts.lens)
            lines.append(f"| {spec} | {label} | " + " | ".join(cells) + f" | {'yes' if met else 'no'} |")
        sel = [r for r in rows if r["threads"] == threads]
        cpu = [r for r in sel if r.get("ratio_cpu")]
        lines += ["", f"{sum(r['ratio'] <= TARGET for r in sel)} of {len(sel)} (model, T) points meet the target "
                      f"on p50, {sum(r['ratio_min'] <= TARGET for r in sel)} on the fastest call"
                      + (f", {sum(r['ratio_cpu'] <= TARGET for r in cpu)} of {len(cpu)} on CPU time" if cpu else "")
                      + ".", ""]
    kernels = {(r["spec"], r["attention"]): r["kernels"] for r in rows}
    if kernels:
        lines += ["### Attention kernel per layer (the unpadded graph ORT ran)", "", "| spec | attention | kernels |",
                  "|---|---|---|"]
        lines += [f"| {spec} | {label} | " + "; ".join(f"{k.split('.')[-2]}: {v}" for k, v in ks.items()) + " |"
                  for (spec, label), ks in kernels.items()]
        lines.append("")
    int8 = [(r["spec"], r["attention"], r["int8"]) for r in rows if "int8" in r]
    if int8:
        lines += [f"### int8 (dynamic quantization of the linear layers) vs fp32, ORT, T={int8[0][2]['T']}, "
                  f"{int8[0][2]['threads']} thread(s); target <= 0.6x", "",
                  "| spec | attention | fp32 ms | int8 ms | int8/fp32 (p50; fastest) | file MB fp32 -> int8 |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {spec} | {label} | {q['fp32_ms']:.3g} | {q['int8_ms']:.3g} | {q['ratio']:.2f}; {q['ratio_min']:.2f}"
                  f"{_cpu_cell(q)} "
                  f"| {q['fp32_bytes'] / 1e6:.2f} -> {q['int8_bytes'] / 1e6:.2f} |" for spec, label, q in int8]
        lines.append("")
    if peak:
        lines += [f"## Softmax attention at T={eff[0]['T'] if eff else '-'} against large matmuls "
                  f"({opts.single_threads} thread(s))", "",
                  f"Matmul (best of 1024^3 and 2048^3) p50: torch {peak['torch_gmacs']:.1f} GMAC/s (n={peak['torch_n']}), "
                  f"ORT {peak['ort_gmacs']:.1f} GMAC/s (n={peak['ort_n']}); fastest call: torch "
                  f"{peak['torch_gmacs_best']:.1f}, ORT {peak['ort_gmacs_best']:.1f}"
                  + (f"; least CPU time: torch {peak['torch_gmacs_cpu']:.1f}, ORT {peak['ort_gmacs_cpu']:.1f}"
                     if "torch_gmacs_cpu" in peak else "") + ". GMAC/s = nasgraph FLOPs/s "
                  "(multiply-add = 1); double for the 2-FLOP convention.", "",
                  "| layer | GMAC | eager ms | eager GMAC/s (of torch matmul) | ORT ms | ORT GMAC/s (of ORT matmul) "
                  "| of peak, fastest calls (1 thread: and CPU time): eager / ORT |", "|---|---|---|---|---|---|---|"]
        lines += [f"| d_model {e['d_model']}, {e['heads']} heads | {e['macs'] / 1e9:.2f} | {e['eager_ms']:.1f} | "
                  f"{e['eager_gmacs']:.1f} ({e['eager_of_peak']:.0%}) | {e['ort_ms']:.1f} | {e['ort_gmacs']:.1f} "
                  f"({e['ort_of_peak']:.0%}) | {e['eager_of_peak_best']:.0%} / {e['ort_of_peak_best']:.0%}"
                  + (f"; CPU time {e['eager_of_peak_cpu']:.0%} / {e['ort_of_peak_cpu']:.0%}" if "ort_of_peak_cpu" in e else "")
                  + " |" for e in eff]
    return "\n".join(lines) + "\n"


def _cpu_cell(row: dict) -> str:
    return f"; cpu {row['ratio_cpu']:.2f}" if row.get("ratio_cpu") else ""


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
    md = markdown(rows, peak, eff, env, opts, load)
    if failures:
        md += "\nFailures:\n" + "\n".join(f"- {f['spec']} / {f['attention']}: {f['error']}" for f in failures) + "\n"
    (opts.out / "deploy_latency.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
