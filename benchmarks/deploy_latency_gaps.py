"""Where ONNX Runtime loses to PyTorch eager, by op class, from `deploy_latency_profile.py`'s JSON.

Each runtime's profiled time per op type is grouped into classes (attention kernel, matmul, elementwise,
activation, norm, layout, other), scaled so that the classes add up to that runtime's un-profiled CPU
time per call (profiling inflates both, so shares are what is kept), and put side by side. The last
columns say how many ms ORT must shed to reach 0.8x eager; the ratio ORT would have if it matched eager
wherever it is slower ("at parity": attention, matmul and elementwise count as one class there, since
eager adds biases inside addmm and runs block attention as one SDPA call); the ratio if everything but
its attention kernel were free (a floor no graph change outside the kernel can beat), and ORT's time
without its matmul class as a share of its own (the most any scheme that only speeds up matmuls, such
as int8 linear layers, could give against fp32). Decomposed attention (local, aft_simple) has its score
products in ORT's matmul class, while eager's SDPA call is one attention op.

    python benchmarks/deploy_latency_gaps.py benchmarks/out/deploy_latency_profile.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGET = 0.8
CLASSES = ("attention", "matmul", "elementwise", "activation", "norm", "layout", "other")
_MEMBERS = {
    "attention": {"MultiHeadAttention", "Attention", "GroupQueryAttention", "Softmax",
                  "_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_attention_math",
                  "scaled_dot_product_attention", "_softmax", "softmax"},
    "matmul": {"MatMul", "FusedMatMul", "Gemm", "MatMulInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",
               "QLinearMatMul", "MatMulNBits", "addmm", "mm", "bmm", "matmul", "linear", "baddbmm"},
    "elementwise": {"Add", "Sub", "Mul", "Div", "ReduceSum", "ReduceMean", "Clip", "Sqrt", "Pow", "Neg",
                    "add", "add_", "sub", "mul", "mul_", "div", "div_", "sum", "mean", "clamp", "clamp_min",
                    "neg", "rsub", "masked_fill_", "masked_fill", "where", "Where"},
    "activation": {"BiasGelu", "Gelu", "FastGelu", "Erf", "Elu", "Exp", "Min", "Max", "Relu", "Sigmoid",
                   "Tanh", "Sin", "Cos", "Softplus", "gelu", "elu", "exp", "relu", "sigmoid", "tanh", "sin",
                   "cos", "softplus", "minimum", "maximum"},
    "norm": {"LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
             "native_layer_norm", "layer_norm"},
    "layout": {"Transpose", "Reshape", "Slice", "Concat", "Pad", "Gather", "Expand", "Split", "Squeeze",
               "Unsqueeze", "Shape", "Identity", "Cast", "copy_", "cat", "clone", "contiguous", "index_select",
               "view", "transpose", "permute", "as_strided", "empty", "constant_pad_nd", "slice", "reshape",
               "unsqueeze", "expand", "embedding", "select", "to", "_to_copy", "empty_like", "zeros",
               "ones", "unflatten", "flatten", "split", "unbind", "stack"},
}
_SAME_WORK = ("attention", "matmul", "elementwise")  # compared as one class by `at_parity`
_CLASS_OF = {name: cls for cls, names in _MEMBERS.items() for name in names}


def op_class(op: str) -> str:
    """The class of an ORT op type ("MatMul") or a torch profiler key ("aten::addmm")."""
    return _CLASS_OF.get(op.split("::")[-1], "other")


def by_class(ops: dict[str, float], total_ms: float) -> dict[str, float]:
    """Profiled ms per op -> ms per class, scaled so the classes sum to total_ms (un-profiled)."""
    raw = {c: 0.0 for c in CLASSES}
    for op, ms in ops.items():
        raw[op_class(op)] += ms
    scale = total_ms / (sum(raw.values()) or 1.0)
    return {c: v * scale for c, v in raw.items()}


def at_parity(ort: dict[str, float], eager: dict[str, float]) -> float:
    """ORT/eager if ORT took eager's time wherever its own is higher (the _SAME_WORK classes as one)."""
    groups = [_SAME_WORK] + [(c,) for c in CLASSES if c not in _SAME_WORK]
    best = sum(min(sum(ort[c] for c in g), sum(eager[c] for c in g)) for g in groups)
    return best / sum(eager.values())


def gaps(row: dict) -> dict:
    """One profile row -> per-class ms of both runtimes, ms to shed for 0.8x, the attention floor, the no-matmul share."""
    ort, eager = by_class(row["ort_ops"], row["ort_cpu_ms"]), by_class(row["eager_ops"], row["eager_cpu_ms"])
    return {"spec": row["spec"], "attention": row["attention"], "T": row["T"], "ratio": row["ratio_cpu"],
            "ort": ort, "eager": eager, "shed_ms": max(0.0, row["ort_cpu_ms"] - TARGET * row["eager_cpu_ms"]),
            "at_parity": at_parity(ort, eager), "attention_floor": ort["attention"] / row["eager_cpu_ms"],
            "matmul_free": 1.0 - ort["matmul"] / row["ort_cpu_ms"]}


def markdown(rows: list[dict]) -> str:
    head = " | ".join(CLASSES)
    lines = [f"Per class: ORT / eager ms (un-profiled CPU time split by profiled shares). 'shed' = ms ORT must "
             f"lose for {TARGET}x; 'at parity' = ORT/eager if ORT matched eager wherever slower; 'attention floor' = ORT/eager with everything but ORT's attention kernel free; "
             "'no-matmul share' = ORT's time without its matmuls / ORT's time.", "",
             f"| spec | attention | T | ORT/eager | {head} | shed ms | at parity | attention floor | no-matmul share |",
             "|---|---|---|---|" + "---|" * len(CLASSES) + "---|---|---|---|"]
    for g in rows:
        cells = " | ".join(f"{g['ort'][c]:.2f} / {g['eager'][c]:.2f}" for c in CLASSES)
        lines.append(f"| {g['spec']} | {g['attention']} | {g['T']} | {g['ratio']:.2f} | {cells} | "
                     f"{g['shed_ms']:.2f} | {g['at_parity']:.2f} | {g['attention_floor']:.2f} | {g['matmul_free']:.2f} |")
    lost = {c: sum(g["ort"][c] - g["eager"][c] for g in rows) for c in CLASSES}
    lines += ["", "ORT minus eager, summed over the rows (ms; positive = ORT slower): "
              + ", ".join(f"{c} {v:+.2f}" for c, v in sorted(lost.items(), key=lambda kv: -kv[1]))]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("profiles", type=Path, nargs="+", help="deploy_latency_profile.json files")
    opts = ap.parse_args()
    rows = [gaps(r) for p in opts.profiles for r in json.loads(p.read_text())["rows"]]
    print(markdown(rows))


if __name__ == "__main__":
    main()
