"""Where one attention type's time goes as T grows: per-op-type time at each length, ORT and eager.

The scaling benchmark's module (batch 1, d_model 256, 4 heads, causal) exported once with a dynamic
T; at each length, ORT's profiler (each node's least kernel time over the profiled runs, summed by op
type) and the torch profiler (self CPU per aten op, least over runs), with each op type's growth from
the first length to the last. An op type that grows much faster than T (the work is linear) is the
one to engineer. Profiling inflates times; compare shares and growth, not totals.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/attention_scaling_profile.py --types deltanet --lengths 1024,8192
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.attention_scaling_child import D_MODEL, build_module  # noqa: E402
from benchmarks.deploy_latency_profile import ort_profile, torch_profile  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def profile_type(name: str, lengths: list[int], runs: int, work: Path) -> dict[int, dict[str, dict]]:
    """{T: {"ort": {op: ms}, "eager": {aten op: ms}}} for one type."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build_module(name, max(lengths), causal=True)
    path = work / f"{name}.onnx"
    export_onnx(model, (torch.randn(1, lengths[0], D_MODEL),), path, input_names=["x"], output_names=["y"],
                dynamic_axes={"x": {1: "seq"}}, axis_max={"seq": max(lengths)}, fallback=False)
    result = {}
    for T in lengths:
        x = torch.randn(1, T, D_MODEL)
        result[T] = {"ort": ort_profile(path, {"x": x.numpy()}, runs), "eager": torch_profile(model, (x,), runs)}
    return result


def growth_table(name: str, side: str, by_t: dict[int, dict[str, dict]], top: int) -> str:
    """Markdown: op type, ms at each T, share of the total at each T, last/first growth."""
    lengths = sorted(by_t)
    first, last = by_t[lengths[0]][side], by_t[lengths[-1]][side]
    totals = {T: sum(by_t[T][side].values()) for T in lengths}
    ops = sorted(last, key=lambda op: -last[op])[:top]
    head = (f"| {name} {side} op | " + " | ".join(f"ms (share) T={T}" for T in lengths)
            + f" | {lengths[-1]}/{lengths[0]} |")
    rows = [head, "|---" * (len(lengths) + 2) + "|"]
    for op in ops + ["total"]:
        ms = {T: totals[T] if op == "total" else by_t[T][side].get(op, 0.0) for T in lengths}
        grow = ms[lengths[-1]] / ms[lengths[0]] if ms[lengths[0]] else float("inf")
        rows.append(f"| {op.replace('aten::', '')} | "
                    + " | ".join(f"{ms[T]:.2f} ({ms[T] / totals[T]:.0%})" for T in lengths) + f" | {grow:.1f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--types", default="deltanet")
    ap.add_argument("--lengths", default="1024,8192")
    ap.add_argument("--runs", type=int, default=5, help="profiled runs per runtime and T (least time kept)")
    ap.add_argument("--top", type=int, default=10, help="op types shown per table")
    ap.add_argument("--tag", default="", help="suffix of the output files")
    opts = ap.parse_args()
    lengths = [int(t) for t in opts.lengths.split(",")]
    tables, raw = [], {}
    with tempfile.TemporaryDirectory(prefix="scaling_profile_") as tmp:
        for name in opts.types.split(","):
            raw[name] = by_t = profile_type(name, lengths, opts.runs, Path(tmp))
            tables += [growth_table(name, side, by_t, opts.top) for side in ("ort", "eager")]
            print(tables[-2] + "\n" + tables[-1], flush=True)
    OUT.mkdir(exist_ok=True)
    (OUT / f"attention_scaling_profile{opts.tag}.json").write_text(json.dumps(raw, indent=1))
    (OUT / f"attention_scaling_profile{opts.tag}.md").write_text("\n".join(tables))


if __name__ == "__main__":
    main()
