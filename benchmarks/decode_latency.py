"""Decode-time targets of issue 11, measured: per-token decode latency against context length.

1. Flat in context: every decodable type whose state has a fixed size (the linear family, the
   recurrences, windows, AFT running sums) as a standalone causal layer (d_model 256, 4 heads, batch 1):
   per-token p50 at the longest context over the shortest, target <= 1.2.
2. Hybrid: a 4-layer causal LM (d_model 256, 4 heads, byte vocabulary) with one softmax layer in four
   (the rest --partner, default gated_deltanet) against all-softmax: per-token p50 and decoding-state
   memory at the longest context; targets >= 2.5x faster and <= 0.3x the state.
Backends: PyTorch eager; for the two models also ONNX Runtime (prefill/step graphs exported by
exporters.decode_export, driven by exporters.decode_runtime) when that driver is installed. The contexts of one subject are timed interleaved, call
by call, and so are the two models, so that load drift on a shared machine hits them alike; ratios
come from the same run, as medians of per-round ratios (a round times every call once).

    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/decode_latency.py
    .venv/bin/python benchmarks/decode_latency.py --contexts 1024,8192 --repeats 40 --threads 1
Writes benchmarks/out/decode_latency.{md,json} and prints the tables.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from nasgraph import attention, decoding  # noqa: E402
from nasgraph.graph import compile_spec  # noqa: E402
from nasgraph.model import GraphModule  # noqa: E402
from nasgraph.spec import load_spec  # noqa: E402
from nasgraph.textfmt import table  # noqa: E402

D_MODEL, N_HEADS, LAYERS = 256, 4, 4
MODEL = """
name: {name}
task: {{kind: lm, path: /nonexistent.txt, max_len: {max_len}}}
model:
  d_model: {d}
  n_heads: {h}
  norm: {{type: rms}}
  layers: [{layers}]
"""


def fixed_state_types() -> list[str]:
    """Decodable causal types whose state does not grow with the context."""
    out = []
    for name in attention.names():
        cls = attention.get(name)
        if cls.caps.causal and cls.caps.decodable:
            layer = attention.build(name, 32, 2, causal=True, max_len=64 if cls.caps.bounded else None)
            if not any("S" in shape for _, shape in layer.state_shapes()):
                out.append(name)
    return out


def interleaved_clocks(calls: dict, repeats: int, warmup: int) -> dict[object, dict[str, list[float]]]:
    """{key: {"wall": ms per round, "cpu": ms per round (time.process_time)}} of each zero-argument
    call, timed in turns (one call of each per round)."""
    times = {key: {"wall": [], "cpu": []} for key in calls}
    for r in range(warmup + repeats):
        for key, call in calls.items():
            w, c = time.perf_counter(), time.process_time()
            call()
            if r >= warmup:
                times[key]["wall"].append((time.perf_counter() - w) * 1e3)
                times[key]["cpu"].append((time.process_time() - c) * 1e3)
    return times


def interleaved(calls: dict, repeats: int, warmup: int) -> dict[object, list[float]]:
    """Wall ms of each zero-argument call per round, timed in turns (one call of each per round)."""
    return {key: t["wall"] for key, t in interleaved_clocks(calls, repeats, warmup).items()}


def p50(times: list[float]) -> float:
    return statistics.median(times)


def paired_ratio(slow: list[float], fast: list[float]) -> float:
    """Median over rounds of slow / fast timed in the same round (load common to a round cancels)."""
    return statistics.median(a / b for a, b in zip(slow, fast) if b > 0)


def layer_steps(name: str, contexts: list[int]) -> tuple[dict[int, callable], int]:
    cls = attention.get(name)
    torch.manual_seed(0)
    layer = attention.build(name, D_MODEL, N_HEADS, causal=True,
                            max_len=max(contexts) + 1 if cls.caps.bounded else None).eval()
    x_t = torch.randn(1, D_MODEL)
    steps, size = {}, 0
    for C in contexts:
        _, state = layer.prefill(torch.randn(1, C, D_MODEL))
        steps[C] = (lambda s=state, c=C: layer.step(x_t, s, c))
        size = decoding.state_bytes(state)
    return steps, size


def build_model(layers: list[str], max_len: int, folder: Path) -> GraphModule:
    """The benchmark's causal LM with these attention types per layer (seeded random weights)."""
    spec = folder / f"nasgraph-decode-bench-{'-'.join(layers)}.yaml"
    spec.write_text(MODEL.format(name="m", max_len=max_len, d=D_MODEL, h=N_HEADS,
                                 layers=", ".join(f"{{attention: {a}}}" for a in layers)))
    torch.manual_seed(0)
    return GraphModule(compile_spec(load_spec(spec), force=True)).eval()


def model_steps(layers: list[str], contexts: list[int], ort_dir: str | None = None, threads: int = 1
                ) -> tuple[dict[tuple[str, int], callable], dict[int, int]]:
    """Per (backend, context): one decoding step of the 4-layer LM from its state after `context`
    tokens; ONNX Runtime too when `ort_dir` is given (exported there by exporters.decode_export)."""
    model = build_model(layers, max(contexts) + 1, Path(tempfile.gettempdir()))
    token = torch.randint(2, 258, (1, 1))
    steps, sizes = {}, {}
    for C in contexts:
        _, state = decoding.prefill(model, torch.randint(2, 258, (1, C)))
        steps["eager", C] = (lambda s=state, c=C: decoding.step(model, token, s, c))
        sizes[C] = decoding.state_bytes(state)
    if ort_dir is not None:
        from exporters.decode_bench import ort_model_subject

        try:
            ort = ort_model_subject("m", model, 258, max(contexts) + 1, threads, ort_dir)
            ort_steps = {("ORT", C): (lambda s=ort.prefill(C), c=C: ort.step(s, c)) for C in contexts}
        except Exception as err:  # an export or ONNX Runtime failure: eager rows only, say why
            print(f"{'-'.join(layers)}: no ONNX Runtime rows: {type(err).__name__}: {str(err)[:300]}", flush=True)
            ort_steps = {}
        steps.update(ort_steps)
    return steps, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contexts", default="1024,2048,4096,8192")
    ap.add_argument("--types", help="comma-separated fixed-state types (default: every one)")
    ap.add_argument("--partner", default="gated_deltanet", help="the hybrid's non-softmax layer type")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ort", choices=["auto", "no"], default="auto",
                    help="auto: also ONNX Runtime for the two models when a decode driver is installed")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    contexts = sorted(int(c) for c in args.contexts.split(","))
    lo, hi = contexts[0], contexts[-1]
    torch.set_num_threads(args.threads)
    result = {"contexts": contexts, "threads": args.threads, "repeats": args.repeats,
              "d_model": D_MODEL, "n_heads": N_HEADS, "torch": torch.__version__, "flat": {}, "models": {}}
    with torch.no_grad():
        for name in (args.types.split(",") if args.types else fixed_state_types()):
            steps, size = layer_steps(name, contexts)
            times = interleaved(steps, args.repeats, args.warmup)
            ratio = paired_ratio(times[hi], times[lo])
            result["flat"][name] = {"p50_ms": {C: p50(times[C]) for C in contexts}, "state_bytes": size,
                                    "ratio": ratio}
            print(f"{name}: " + ", ".join(f"{C}: {p50(times[C]):.3f} ms" for C in contexts) + f"  ratio {ratio:.2f}",
                  flush=True)
        models = {"all-softmax": ["softmax"] * LAYERS,
                  f"hybrid 1/4 softmax + {args.partner}": ["softmax"] + [args.partner] * (LAYERS - 1)}
        from exporters.decode_bench import ort_available

        tried = ["eager"] + (["ORT"] if args.ort == "auto" and ort_available() else [])
        calls, sizes = {}, {}
        with tempfile.TemporaryDirectory(prefix="nasgraph-decode-bench-") as tmp:
            for label, layers in models.items():             # both models (and backends) timed in turns
                steps, sizes[label] = model_steps(layers, contexts, tmp if "ORT" in tried else None,
                                                  args.threads)
                calls.update({(label, b, C): call for (b, C), call in steps.items()})
            backends = [b for b in tried if all((label, b, C) in calls for label in models for C in contexts)]
            calls = {k: v for k, v in calls.items() if k[1] in backends}   # a backend for both models or none
            times = interleaved(calls, args.repeats, args.warmup)
        result["backends"] = backends
        for label, layers in models.items():
            result["models"][label] = {"layers": layers, "state_bytes": sizes[label], "p50_ms": {
                b: {C: p50(times[label, b, C]) for C in contexts} for b in backends}}
            for b in backends:
                print(f"{label} ({b}): " + ", ".join(f"{C}: {p50(times[label, b, C]):.3f} ms, "
                                                     f"{sizes[label][C] / 2 ** 20:.2f} MB" for C in contexts), flush=True)
        soft, hybrid = models
        result["speedup"] = {b: {C: paired_ratio(times[soft, b, C], times[hybrid, b, C]) for C in contexts}
                             for b in backends}
    write(result, args.out, lo, hi)


def write(result: dict, out: Path, lo: int, hi: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_latency.json").write_text(json.dumps(result, indent=1))
    flat = [[n, *(f"{r['p50_ms'][C]:.3f}" for C in result["contexts"]), f"{r['state_bytes'] / 1024:.1f}",
             f"{r['ratio']:.2f}", "yes" if r["ratio"] <= 1.2 else "NO"] for n, r in result["flat"].items()]
    (soft, s), (hyb, h) = result["models"].items()
    memory = h["state_bytes"][hi] / s["state_bytes"][hi]
    models = [[f"{label} ({b})", *(f"{r['p50_ms'][b][C]:.3f}" for C in result["contexts"]),
               f"{r['state_bytes'][hi] / 2 ** 20:.2f}"] for label, r in result["models"].items() for b in r["p50_ms"]]
    speeds = "; ".join(f"{b}: {v[hi]:.2f}x" for b, v in result["speedup"].items())
    md = [f"# Decode latency (batch 1, {result['threads']} thread(s), p50 of {result['repeats']} "
          f"interleaved calls)", "", f"## Fixed-state types: per-token ms, PyTorch eager (layer d_model "
          f"{result['d_model']}, {result['n_heads']} heads); target {hi}/{lo} <= 1.2", "",
          table(flat, ["type", *(str(C) for C in result["contexts"]), "state KB", f"{hi}/{lo} (paired)", "flat"],
                markdown=True), "", f"## {LAYERS}-layer LM: per-token ms; state MB at {hi}", "",
          table(models, ["model (backend)", *(str(C) for C in result["contexts"]), f"state MB at {hi}"],
                markdown=True), "",
          f"Hybrid vs all-softmax at {hi}, faster per token (median of per-round ratios; target >= 2.5): {speeds}; "
          f"state memory {memory:.3f}x (target <= 0.3).", ""]
    (out / "decode_latency.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
