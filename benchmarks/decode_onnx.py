"""Exported prefill/step graphs per attention type: decoding parity and ONNX Runtime vs eager tokens/s.

For each causal attention type with a decoding form, a small causal LM (seeded random weights; 2
layers of that type, d_model 64, 4 heads, max_len --context + --steps) is exported as prefill and step
graphs like `nasgraph export` does (dynamo, parity-checked on random tokens). Then, at batch 1:
- parity: the export's own check (ORT prefill of half a batch, a step per remaining token, steps from
  the initial state, against the eager full forward) and its largest |logit difference|;
- tokens/s: prefill --context tokens, then --steps steps, timed per step, ORT (exporters.decode_runtime
  .OrtDecoder) and eager (nasgraph.decoding.step under no_grad) alternating in rounds so a busy
  machine slows both alike; medians; 1 thread each.

Writes benchmarks/out/decode_onnx.{md,json}.
    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/decode_onnx.py [--types softmax,gla] [--both]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import torch  # noqa: E402

from exporters.decode_export import export_decode  # noqa: E402
from exporters.decode_runtime import OrtDecoder  # noqa: E402
from nasgraph import attention, decoding  # noqa: E402
from nasgraph.graph import compile_spec  # noqa: E402
from nasgraph.model import GraphModule  # noqa: E402
from nasgraph.spec import load_spec  # noqa: E402

SPEC = """
name: decode-{name}
task: {{kind: mqar, max_len: {max_len}, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 2, n_val: 1, n_test: 1}}
model: {{d_model: 64, n_heads: 4, n_layers: 2, attention: {name}}}
"""


def one_type(name: str, folder: Path, context: int, steps: int, rounds: int, both: bool = False) -> dict:
    max_len = context + steps
    spec = folder / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, max_len=max_len))
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(spec))).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 19, (1, max_len), generator=gen)                   # (1, T)
    checks = [torch.randint(2, 19, (3, 16), generator=gen), ids[:, :64]]
    example = torch.randint(2, 19, (2, 8), generator=gen)
    start = time.perf_counter()
    _, report = export_decode(model, folder / f"{name}.onnx", checks, max_len=max_len, example=example)
    export_s = time.perf_counter() - start
    decoders = {"ort": OrtDecoder(folder / f"{name}.step.onnx", threads=1)}
    if both:  # the same model exported with standard ops only (no com.microsoft LinearAttention)
        export_decode(model, folder / f"{name}.std.onnx", checks, max_len=max_len, example=example, contrib_ops=False)
        decoders["std"] = OrtDecoder(folder / f"{name}.std.step.onnx", threads=1)
    times: dict[str, list[float]] = {k: [] for k in decoders}
    prefill: dict[str, list[float]] = {k: [] for k in decoders}             # ms of the --context prompt
    eager_ms = []
    with torch.no_grad():
        for _ in range(rounds):
            for key, decoder in decoders.items():
                t0 = time.perf_counter()
                _, state = decoder.prefill(ids[:, :context].numpy())
                prefill[key].append(1e3 * (time.perf_counter() - t0))
                for t in range(context, max_len):
                    t0 = time.perf_counter()
                    _, state = decoder.step(ids[:, t:t + 1].numpy(), state, t)
                    times[key].append(1e3 * (time.perf_counter() - t0))
            _, eager = decoding.prefill(model, ids[:, :context])
            for t in range(context, max_len):
                t0 = time.perf_counter()
                _, eager = decoding.step(model, ids[:, t:t + 1], eager, t)
                eager_ms.append(1e3 * (time.perf_counter() - t0))
    ort, eag = statistics.median(times["ort"]), statistics.median(eager_ms)
    std = {"std_ops_step_ms": round(statistics.median(times["std"]), 3),
           "std_ops_prefill_ms": round(statistics.median(prefill["std"]), 3)} if both else {}
    return {**std, "type": name, "parity_max_abs_diff": report.max_abs_diff, "parity": report.summary(),
            "export_s": round(export_s, 1), "state_bytes": decoder.state_bytes(state),
            "ort_prefill_ms": round(statistics.median(prefill["ort"]), 3), "ort_step_ms": round(ort, 3),
            "eager_step_ms": round(eag, 3),
            "ort_tok_s": round(1e3 / ort, 1), "eager_tok_s": round(1e3 / eag, 1), "ort_over_eager": round(eag / ort, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", help="comma-separated attention types (default: every decodable causal type)")
    parser.add_argument("--context", type=int, default=256, help="tokens prefilled before timing steps")
    parser.add_argument("--steps", type=int, default=32, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--both", action="store_true", help="also time a standard-ops export (contrib_ops=False)"
                        " of each model, interleaved: the ORT step with / without com.microsoft LinearAttention")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.types.split(",") if args.types else [
        n for n in attention.names() if attention.get(n).caps.causal and attention.get(n).caps.decodable]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows.append(one_type(name, Path(tmp), args.context, args.steps, args.rounds, args.both))
            except Exception as err:  # noqa: BLE001 - one type failing is a finding, not the end of the run
                traceback.print_exc()
                rows.append({"type": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            print(json.dumps(rows[-1]), flush=True)
    header = (f"decode ONNX benchmark {time.strftime('%Y-%m-%d %H:%M')}, context {args.context}, {args.steps} steps x "
              f"{args.rounds} rounds, batch 1, 1 thread, load average {os.getloadavg()[0]:.1f}, "
              f"torch {torch.__version__}")
    extra = (" std-ops ORT tok/s | std-ops step / LinearAttention step | std-ops prefill / LinearAttention"
             " prefill |" if args.both else "")
    lines = [header, "", "| type | parity max abs diff | ORT tok/s | eager tok/s | ORT/eager | state KiB |" + extra,
             "|---|---|---|---|---|---|" + "---|" * (3 if args.both else 0)]
    for r in rows:
        more = (f" {1e3 / r['std_ops_step_ms']:.1f} | {r['std_ops_step_ms'] / r['ort_step_ms']:.2f} | "
                f"{r['std_ops_prefill_ms'] / r['ort_prefill_ms']:.2f} |" if args.both and "error" not in r
                else " | | |" if args.both else "")
        lines.append(f"| {r['type']} | error: {r['error']} | | | | |" if "error" in r else
                     f"| {r['type']} | {r['parity_max_abs_diff']:.2g} | {r['ort_tok_s']} | {r['eager_tok_s']} | "
                     f"{r['ort_over_eager']} | {r['state_bytes'] / 1024:.0f} |" + more)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decode_onnx.md").write_text("\n".join(lines) + "\n")
    (args.out / "decode_onnx.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
