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
    OMP_WAIT_POLICY=PASSIVE nice -n 10 .venv/bin/python benchmarks/decode_onnx.py [--types softmax,gla]
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


def one_type(name: str, folder: Path, context: int, steps: int, rounds: int) -> dict:
    max_len = context + steps
    spec = folder / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, max_len=max_len))
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(spec))).eval()
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(2, 19, (1, max_len), generator=gen)                   # (1, T)
    checks = [torch.randint(2, 19, (3, 16), generator=gen), ids[:, :64]]
    start = time.perf_counter()
    _, report = export_decode(model, folder / f"{name}.onnx", checks, max_len=max_len,
                              example=torch.randint(2, 19, (2, 8), generator=gen))
    export_s = time.perf_counter() - start
    decoder = OrtDecoder(folder / f"{name}.step.onnx", threads=1)
    ort_ms, eager_ms = [], []
    with torch.no_grad():
        for _ in range(rounds):
            _, state = decoder.prefill(ids[:, :context].numpy())
            for t in range(context, max_len):
                t0 = time.perf_counter()
                _, state = decoder.step(ids[:, t:t + 1].numpy(), state, t)
                ort_ms.append(1e3 * (time.perf_counter() - t0))
            _, eager = decoding.prefill(model, ids[:, :context])
            for t in range(context, max_len):
                t0 = time.perf_counter()
                _, eager = decoding.step(model, ids[:, t:t + 1], eager, t)
                eager_ms.append(1e3 * (time.perf_counter() - t0))
    ort, eag = statistics.median(ort_ms), statistics.median(eager_ms)
    return {"type": name, "parity_max_abs_diff": report.max_abs_diff, "parity": report.summary(),
            "export_s": round(export_s, 1), "state_bytes": decoder.state_bytes(state),
            "ort_step_ms": round(ort, 3), "eager_step_ms": round(eag, 3),
            "ort_tok_s": round(1e3 / ort, 1), "eager_tok_s": round(1e3 / eag, 1), "ort_over_eager": round(eag / ort, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", help="comma-separated attention types (default: every decodable causal type)")
    parser.add_argument("--context", type=int, default=256, help="tokens prefilled before timing steps")
    parser.add_argument("--steps", type=int, default=32, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.types.split(",") if args.types else [
        n for n in attention.names() if attention.get(n).caps.causal and attention.get(n).caps.decodable]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            try:
                rows.append(one_type(name, Path(tmp), args.context, args.steps, args.rounds))
            except Exception as err:  # noqa: BLE001 - one type failing is a finding, not the end of the run
                traceback.print_exc()
                rows.append({"type": name, "error": f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"})
            print(json.dumps(rows[-1]), flush=True)
    header = (f"decode ONNX benchmark {time.strftime('%Y-%m-%d %H:%M')}, context {args.context}, {args.steps} steps x "
              f"{args.rounds} rounds, batch 1, 1 thread, load average {os.getloadavg()[0]:.1f}, "
              f"torch {torch.__version__}")
    lines = [header, "", "| type | parity max abs diff | ORT tok/s | eager tok/s | ORT/eager | state KiB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['type']} | error: {r['error']} | | | | |" if "error" in r else
                     f"| {r['type']} | {r['parity_max_abs_diff']:.2g} | {r['ort_tok_s']} | {r['eager_tok_s']} | "
                     f"{r['ort_over_eager']} | {r['state_bytes'] / 1024:.0f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "decode_onnx.md").write_text("\n".join(lines) + "\n")
    (args.out / "decode_onnx.json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
