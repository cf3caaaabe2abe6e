"""Issue 11's hybrid target in ONNX Runtime on CPU: per-token decode latency and state memory of a
4-layer LM with one softmax layer in four (the rest --partner, default gated_deltanet) against
all-softmax, exported as prefill/step graphs (exporters.decode_export, parity-checked) and driven
by exporters.decode_runtime.OrtDecoder; PyTorch eager (nasgraph.decoding) side by side.

- Step: the state after C random tokens (one prefill per context), then repeated single steps from
  it (each call does the work of token C + 1). Every (model, backend, context) is timed once per
  round, in turns, so load drift hits them alike; wall and CPU time (time.process_time) per call.
  Ratios all-softmax / hybrid are medians of per-round ratios (same round, same load).
- Prefill: latency against prompt length, interleaved the same way (fewer repeats).
- --profile: ONNX Runtime's profiler on N steps at the longest context: time per op type.

Batch 1, 1 thread (torch.set_num_threads, ORT intra-op), models d_model 256, 4 heads, byte vocabulary,
seeded random weights (latency depends on shapes, not values).

    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/decode_hybrid_ort.py --repeats 30
Writes benchmarks/out/decode_hybrid_ort.{md,json,png} and prints the tables.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.decode_latency import (D_MODEL, LAYERS, N_HEADS, build_model, interleaved_clocks,  # noqa: E402
                                       paired_ratio)
from exporters.decode_export import export_decode  # noqa: E402
from exporters.decode_runtime import OrtDecoder  # noqa: E402
from nasgraph import decoding  # noqa: E402
from nasgraph.model import GraphModule  # noqa: E402
from nasgraph.plotting import finish_plot, plain_ticks, pyplot  # noqa: E402
from nasgraph.textfmt import table  # noqa: E402

VOCAB = 258


class Backends:
    """One model's prefill/step calls per backend: "eager" (nasgraph.decoding) and "ORT" (OrtDecoder)."""

    def __init__(self, model: GraphModule, decoder: OrtDecoder, seed: int = 0):
        self.model, self.decoder = model, decoder
        self.rng = np.random.default_rng(seed)
        self.token = self.rng.integers(2, VOCAB, (1, 1))                   # (1, 1)

    def ids(self, T: int) -> np.ndarray:
        return self.rng.integers(2, VOCAB, (1, T))                          # (1, T)

    def prefill(self, backend: str, ids: np.ndarray):
        if backend == "ORT":
            return self.decoder.prefill(ids)[1]
        return decoding.prefill(self.model, torch.from_numpy(ids))[1]

    def step(self, backend: str, state, pos: int):
        if backend == "ORT":
            return self.decoder.step(self.token, state, pos)
        return decoding.step(self.model, torch.from_numpy(self.token), state, pos)

    def state_bytes(self, backend: str, state) -> int:
        return self.decoder.state_bytes(state) if backend == "ORT" else decoding.state_bytes(state)


def profile_steps(decoder: OrtDecoder, state: dict, token: np.ndarray, pos: int, n: int, threads: int,
                  folder: Path, by_node: bool = False) -> dict[str, float]:
    """ms per step by ONNX op type, or by node ("op:name"), from ORT's profiler over n steps of the
    step graph from `state`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.enable_profiling, options.profile_file_prefix = True, str(folder / "step-profile")
    session = ort.InferenceSession(str(decoder.step_path), options, providers=["CPUExecutionProvider"])
    feeds = {decoder.layout["token_input"]: token, decoder.layout["position_input"]: np.array(pos), **state}
    for _ in range(n):
        session.run(None, feeds)
    events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = {}
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            op = e.get("args", {}).get("op_name", "?")
            if by_node:
                op = f"{op}:{e['name'].removesuffix('_kernel_time')}"
            by_op[op] = by_op.get(op, 0.0) + e["dur"] / 1e3 / n              # us -> ms per step
    return dict(sorted(by_op.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--contexts", default="1024,2048,4096,8192")
    ap.add_argument("--prompts", default="128,512,1024,2048,4096,8192")
    ap.add_argument("--partner", default="gated_deltanet", help="the hybrid's non-softmax layer type")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--prefill-repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", type=int, default=20, help="profiled ORT steps at the longest context (0: none)")
    ap.add_argument("--keep", type=Path, help="export the graphs into this folder (kept) instead of a temporary one")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    args = ap.parse_args()
    contexts = sorted(int(c) for c in args.contexts.split(","))
    prompts = sorted(int(c) for c in args.prompts.split(","))
    hi, max_len = contexts[-1], max(contexts[-1], prompts[-1]) + 1
    torch.set_num_threads(args.threads)
    models = {"all-softmax": ["softmax"] * LAYERS,
              f"hybrid 1/{LAYERS} softmax + {args.partner}": ["softmax"] + [args.partner] * (LAYERS - 1)}
    backends = ["ORT", "eager"]
    result = {"contexts": contexts, "prompts": prompts, "threads": args.threads, "repeats": args.repeats,
              "d_model": D_MODEL, "n_heads": N_HEADS, "torch": torch.__version__, "models": {}}
    with tempfile.TemporaryDirectory(prefix="nasgraph-hybrid-ort-") as tmp, torch.no_grad():
        folder, subjects = args.keep or Path(tmp), {}
        folder.mkdir(parents=True, exist_ok=True)
        for label, layers in models.items():
            model = build_model(layers, max_len, folder)
            start = time.perf_counter()
            _, parity = export_decode(model, folder / f"{layers[-1]}.onnx", [torch.randint(2, VOCAB, (2, 12))],
                                      max_len=max_len, overwrite=True)
            print(f"{label}: exported in {time.perf_counter() - start:.0f} s; {parity.summary()}", flush=True)
            subjects[label] = Backends(model, OrtDecoder(folder / f"{layers[-1]}.onnx", threads=args.threads))
            result["models"][label] = {"layers": layers, "parity": parity.summary()}
        states = {(m, b, C): s.prefill(b, s.ids(C)) for m, s in subjects.items() for b in backends for C in contexts}
        for (m, b, C), st in states.items():
            result["models"][m].setdefault("state_bytes", {}).setdefault(b, {})[C] = subjects[m].state_bytes(b, st)
        steps = interleaved_clocks({k: (lambda k=k: subjects[k[0]].step(k[1], states[k], k[2])) for k in states},
                            args.repeats, args.warmup)
        prompt_ids = {T: subjects["all-softmax"].ids(T) for T in prompts}
        prefills = interleaved_clocks({(m, b, T): (lambda m=m, b=b, T=T: subjects[m].prefill(b, prompt_ids[T]))
                                for m in subjects for b in backends for T in prompts},
                               args.prefill_repeats, 1)
        if args.profile:
            result["profile_ms_per_step"] = {m: profile_steps(s.decoder, states[m, "ORT", hi], s.token, hi,
                                                              args.profile, args.threads, folder)
                                             for m, s in subjects.items()}
    soft, hybrid = models
    for m in models:
        result["models"][m]["step_ms"] = {b: {C: {k: statistics.median(steps[m, b, C][k]) for k in ("wall", "cpu")}
                                              for C in contexts} for b in backends}
        result["models"][m]["prefill_ms"] = {b: {T: {k: statistics.median(prefills[m, b, T][k])
                                                     for k in ("wall", "cpu")} for T in prompts} for b in backends}
    result["speedup"] = {b: {C: {k: paired_ratio(steps[soft, b, C][k], steps[hybrid, b, C][k]) for k in ("wall", "cpu")}
                             for C in contexts} for b in backends}
    result["memory_ratio"] = {b: result["models"][hybrid]["state_bytes"][b][hi] / result["models"][soft]["state_bytes"][b][hi]
                              for b in backends}
    write(result, args.out)


def write(result: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "decode_hybrid_ort.json").write_text(json.dumps(result, indent=1))
    contexts, prompts, hi = result["contexts"], result["prompts"], result["contexts"][-1]
    rows = [[f"{m} ({b})", *(f"{r['step_ms'][b][C]['wall']:.2f} / {r['step_ms'][b][C]['cpu']:.2f}" for C in contexts),
             f"{r['state_bytes'][b][hi] / 2 ** 20:.2f}"] for m, r in result["models"].items() for b in r["step_ms"]]
    ratios = [[b, *(f"{v[C]['wall']:.2f} / {v[C]['cpu']:.2f}" for C in contexts), f"{result['memory_ratio'][b]:.3f}"]
              for b, v in result["speedup"].items()]
    pre = [[f"{m} ({b})", *(f"{r['prefill_ms'][b][T]['wall']:.1f}" for T in prompts)]
           for m, r in result["models"].items() for b in r["prefill_ms"]]
    md = [f"# Hybrid decode in ONNX Runtime vs eager (batch 1, {result['threads']} thread, d_model {result['d_model']}, "
          f"{result['n_heads']} heads, medians of {result['repeats']} interleaved rounds)", "",
          "## Per-token decode, ms wall / ms CPU, at context", "",
          table(rows, ["model (backend)", *(str(C) for C in contexts), f"state MB at {hi}"], markdown=True), "",
          "## all-softmax / hybrid per token (median of per-round ratios, wall / CPU; target >= 2.5 at "
          f"{hi}) and state memory hybrid / all-softmax (target <= 0.3)", "",
          table(ratios, ["backend", *(str(C) for C in contexts), "state ratio"], markdown=True), "",
          "## Prefill, ms wall, at prompt length", "",
          table(pre, ["model (backend)", *(str(T) for T in prompts)], markdown=True), ""]
    for m, ops in result.get("profile_ms_per_step", {}).items():
        total = sum(ops.values()) or 1.0
        md.append(f"ORT profile at {hi}, {m}: {total:.2f} ms of kernels per step: " + ", ".join(
            f"{op} {ms:.2f} ({ms / total:.0%})" for op, ms in list(ops.items())[:8]))
    (out / "decode_hybrid_ort.md").write_text("\n".join(md) + "\n")
    plot(result, out / "decode_hybrid_ort.png")
    print("\n".join(md))


def plot(result: dict, path: Path) -> Path:
    plt = pyplot()
    fig, (step_ax, pre_ax) = plt.subplots(1, 2, figsize=(11, 4))
    for m, r in result["models"].items():
        for b, style in (("ORT", "-o"), ("eager", "--s")):
            step_ax.plot(result["contexts"], [r["step_ms"][b][C]["cpu"] for C in result["contexts"]], style,
                         label=f"{m} ({b})")
            pre_ax.plot(result["prompts"], [r["prefill_ms"][b][T]["wall"] for T in result["prompts"]], style,
                        label=f"{m} ({b})")
    step_ax.set(xscale="log", xlabel="context (tokens already decoded)", ylabel="per-token decode, ms CPU",
                title="decode step", xticks=result["contexts"])
    pre_ax.set(xscale="log", yscale="log", xlabel="prompt length (tokens)", ylabel="prefill latency, ms wall",
               title="prefill", xticks=result["prompts"])
    plain_ticks(step_ax, "x"), plain_ticks(pre_ax)
    return finish_plot(fig, path, step_ax, pre_ax)


if __name__ == "__main__":
    main()
