"""Does the installed ONNX Runtime run LinearAttention (com.microsoft v1 and ai.onnx opset 27) on the CPU,
for which update rules, and how fast is the op alone? One layer's recurrence, batch 1, 1 thread, CPU time
of the calling thread (median of 5 calls after one warm-up) at each T. A probe for exporting the causal
recurrent types (retention / gla: gated, deltanet: delta, gated_deltanet: gated_delta) through it.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/ort_linear_attention_probe.py --lengths 1024,8192
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

RULES = ("linear", "gated", "delta", "gated_delta")


def session(rule: str, heads: int, dim: int, domain: str) -> ort.InferenceSession:
    """One LinearAttention node: q, k, v (1, T, H*D), decay (1, T, H) where gated, beta (1, T, H) where delta."""
    names = ["q", "k", "v", "", "decay" if "gated" in rule else "", "beta" if "delta" in rule else ""]
    while names[-1] == "":
        names.pop()
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "T", heads * dim if n in "qkv" else heads])
              for n in names if n]
    node = helper.make_node("LinearAttention", names, ["o", "state"], domain=domain, q_num_heads=heads,
                            kv_num_heads=heads, update_rule=rule, scale=dim ** -0.5)
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("o", "state")]
    opsets = [helper.make_opsetid("", 27 if domain == "" else 21)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(helper.make_graph([node], "probe", inputs, outputs), opset_imports=opsets)
    model.ir_version = 10
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def feed(sess: ort.InferenceSession, length: int, heads: int, dim: int) -> dict[str, np.ndarray]:
    """Unit-norm q and k per head, decays in (-0.1, 0] (log space), betas in (0, 1)."""
    rng = np.random.default_rng(0)
    out = {}
    for i in sess.get_inputs():
        if i.name in "qkv":
            x = rng.standard_normal((1, length, heads, dim))                  # (1, T, H, D)
            if i.name != "v":
                x /= np.linalg.norm(x, axis=-1, keepdims=True)
            out[i.name] = x.reshape(1, length, heads * dim).astype(np.float32)
        elif i.name == "decay":
            out[i.name] = (-0.1 * rng.random((1, length, heads))).astype(np.float32)
        else:
            out[i.name] = rng.random((1, length, heads)).astype(np.float32)
    return out


def cpu_ms(sess: ort.InferenceSession, inputs: dict, repeats: int = 5) -> float:
    sess.run(None, inputs)
    times = []
    for _ in range(repeats):
        start = time.thread_time()
        sess.run(None, inputs)
        times.append(time.thread_time() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lengths", default="1024,8192")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=64, help="head dimension (d_k = d_v)")
    args = p.parse_args()
    lengths = [int(t) for t in args.lengths.split(",")]
    print(f"onnxruntime {ort.__version__}, H={args.heads}, D={args.dim}, CPU ms of the calling thread")
    for domain in ("com.microsoft", ""):
        for rule in RULES:
            try:
                sess = session(rule, args.heads, args.dim, domain)
                ms = [cpu_ms(sess, feed(sess, t, args.heads, args.dim)) for t in lengths]
            except Exception as err:  # noqa: BLE001 (a probe: say what the runtime refused)
                print(f"{domain or 'ai.onnx'} {rule}: not run ({str(err).splitlines()[0][:120]})")
                continue
            cells = ", ".join(f"T={t}: {m:.2f}" for t, m in zip(lengths, ms))
            print(f"{domain or 'ai.onnx'} {rule}: {cells}; ratio {ms[-1] / ms[0]:.1f}", flush=True)


if __name__ == "__main__":
    main()
