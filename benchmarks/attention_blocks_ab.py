"""In-process A/B of attention variants: eager and ONNX Runtime CPU time per call (1 thread), the
variants and lengths alternated call by call (order reversed every other repeat), so a busy machine
slows all alike. Prints median (min) ms per variant, backend and T, and the last/first T ratio.
A variant ending in "+ort" is exported with exporters.fast_ops.export_translations() (ORT's contrib
kernels where installed, e.g. LinearAttention, as `nasgraph export` does) and timed in ORT only.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/attention_blocks_ab.py retention,retention@block=0 1024,8192 10
    OMP_WAIT_POLICY=PASSIVE python benchmarks/attention_blocks_ab.py retention,retention+ort 1024,8192 6
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import torch  # noqa: E402

from attention_scaling_child import build_module  # noqa: E402
from exporters.fast_ops import export_translations  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.runtime import make_session  # noqa: E402

D_MODEL = 256
ORT = "+ort"  # variant suffix: exported with the contrib translations, ORT only


def thread_seconds(call) -> float:
    """CPU time of the calling thread spent in `call()`."""
    start = time.thread_time()
    call()
    return time.thread_time() - start


def build(names: list[str], lengths: list[int], work: str) -> tuple[dict, dict]:
    """Each variant as an eager module (causal, positions up to max(lengths)) and an ORT session."""
    modules, sessions = {}, {}
    for name in names:
        torch.manual_seed(0)
        modules[name] = build_module(name.removesuffix(ORT), max(lengths), True)
        path = os.path.join(work, name.replace("@", "_").replace("=", "").replace("+", "_") + ".onnx")
        export_onnx(modules[name], (torch.randn(1, lengths[0], D_MODEL),), path, input_names=["x"],
                    output_names=["y"], dynamic_axes={"x": {1: "seq"}}, fallback=False,
                    translations=export_translations() if name.endswith(ORT) else None)
        sessions[name] = make_session(path, threads=1)
    return modules, sessions


def measure(names: list[str], lengths: list[int], repeats: int) -> dict[tuple[str, int, str], list[float]]:
    """CPU seconds per call for every (variant, T, backend), the calls interleaved."""
    modules, sessions = build(names, lengths, tempfile.mkdtemp())
    xs = {t: torch.randn(1, t, D_MODEL) for t in lengths}                  # (1, T, d_model)
    calls = {"eager": lambda n, t: modules[n](xs[t]),
             "ort": lambda n, t: sessions[n].run(None, {"x": xs[t].numpy()})}
    times = {(n, t, b): [] for n in names for t in lengths for b in calls}
    with torch.no_grad():
        for n in names:                                                    # warm-up: one call each
            for t in lengths:
                for b, call in calls.items():
                    if b == "ort" or not n.endswith(ORT):
                        call(n, t)
        for r in range(repeats):
            for t in (lengths if r % 2 else lengths[::-1]):
                for n in (names if r % 2 else names[::-1]):
                    for b, call in calls.items():
                        if b == "ort" or not n.endswith(ORT):
                            times[(n, t, b)].append(thread_seconds(lambda: call(n, t)))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("names", help="comma-separated variants, e.g. retention,retention@block=0")
    p.add_argument("lengths", help="comma-separated sequence lengths, e.g. 1024,8192")
    p.add_argument("repeats", type=int, help="timed calls per (variant, T, backend)")
    args = p.parse_args()
    names, lengths = args.names.split(","), [int(t) for t in args.lengths.split(",")]
    torch.set_num_threads(1)
    times = measure(names, lengths, args.repeats)
    first, last = lengths[0], lengths[-1]
    for n in names:
        for b in ("ort",) if n.endswith(ORT) else ("eager", "ort"):
            med = {t: statistics.median(times[(n, t, b)]) * 1e3 for t in lengths}
            low = {t: min(times[(n, t, b)]) * 1e3 for t in lengths}
            cells = " ".join(f"{t}: {med[t]:6.1f} ({low[t]:6.1f})" for t in lengths)
            print(f"{n:28s} {b:5s} {cells} ratio {med[last] / med[first]:.2f} ({low[last] / low[first]:.2f})",
                  flush=True)


if __name__ == "__main__":
    main()
