"""Softmax attention against this machine's large-matmul rate, for `deploy_latency.py`.

The achieved GMAC/s of a softmax attention layer at T=2048 without mask (eager SDPA and ORT's
MultiHeadAttention; FLOPs from nasgraph.flops, which counts a multiply-add as 1, so GFLOP/s here =
GMAC/s) against 1024^3/2048^3 matmuls (torch and ORT) timed in the same run.
"""
from __future__ import annotations

from pathlib import Path

import torch

from exporters.latency import LatencyResult, ort_latency, torch_latency
from exporters.runtime import make_session


def timed(module, inputs, session, feeds, threads: int, repeats: int, rounds: int, budget_s: float):
    """Eager and ORT LatencyResults from alternating rounds (both see the same load), samples pooled."""
    eager, ort = [], []
    per_round = dict(repeats=max(1, repeats // rounds), budget_s=budget_s / rounds)
    for i in range(rounds):
        warm = 3 if i == 0 else 1
        eager.append(torch_latency(module, inputs, threads=threads, warmup=warm, **per_round))
        ort.append(ort_latency(session, feeds, warmup=warm, **per_round))
    return LatencyResult.combine(eager), LatencyResult.combine(ort)


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
        sess, macs = make_session(path, threads=threads), n ** 3
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
        sess = make_session(path, threads=threads)
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
