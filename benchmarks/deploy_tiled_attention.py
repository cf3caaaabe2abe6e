"""Softmax attention kernel paths in ONNX Runtime against torch's CPU SDPA, one layer, no mask.

The question (issue 12): can an exported graph beat ORT's fused flash MultiHeadAttention (the
unpadded graph's path, exporters/fused_attention.py) or torch's SDPA at long T? Paths, each fed
q, k, v as (1, T, H*dh) and parity-checked against SDPA before timing:
- `mha`: com.microsoft.MultiHeadAttention (MLAS flash: Br = dqk + dv query rows x all keys per block);
- `tiled-<Bq>`: query-block-tiled standard ops: Q split into blocks of Bq rows, per block
  MatMul(Q_b, K^T) -> Softmax -> MatMul(P, V) (MLAS sgemm), Concat (Bq = T: one untiled block);
- `mha-padqk-<p>`: q and k zero-padded by p per head (the scores are unchanged; Br grows to
  dqk + p + dv, fewer re-packs of K and V);
- `attention23`: ONNX Attention (opset 23, 3-D q/k/v, no mask);
- `gqa`: com.microsoft.GroupQueryAttention with causal=0, kv_num_heads = num_heads, no past (its own
  MLAS flash kernel; it also writes present K/V). Batch 1: seqlens_k is T - 1 from q's shape.
The figure is the calling thread's CPU time p50 at 1 thread (the process's at more threads), in
alternating rounds so all paths see the same load.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/deploy_tiled_attention.py --lens 512,2048 \
        --blocks 32,128,256,512 --pads 16,48
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from exporters.latency import LatencyResult, measure, ort_latency, torch_threads  # noqa: E402
from exporters.runtime import make_session  # noqa: E402

MSFT = "com.microsoft"


def _model(nodes, inits, D: int, opset: int = 18) -> onnx.ModelProto:
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, "T", D]) for n in "qkv"]
    out = [helper.make_tensor_value_info("o", TensorProto.FLOAT, [1, "T", D])]
    graph = helper.make_graph(nodes, "attention", io, out, initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid(MSFT, 1)])


def _ints(name: str, values) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def mha(H: int, dh: int, pad: int = 0) -> onnx.ModelProto:
    """MultiHeadAttention; pad > 0 widens q and k by `pad` zeros per head first."""
    nodes, inits, q, k = [], [], "q", "k"
    if pad:
        inits += [_ints("heads", [0, 0, H, dh]), _ints("flat", [0, 0, H * (dh + pad)]),
                  _ints("pads", [0, 0, 0, 0, 0, 0, 0, pad])]
        for name in "qk":
            nodes += [helper.make_node("Reshape", [name, "heads"], [f"{name}4"]),            # (1, T, H, dh)
                      helper.make_node("Pad", [f"{name}4", "pads"], [f"{name}p"]),            # (1, T, H, dh+pad)
                      helper.make_node("Reshape", [f"{name}p", "flat"], [f"{name}w"])]        # (1, T, H*(dh+pad))
        q, k = "qw", "kw"
    nodes.append(helper.make_node("MultiHeadAttention", [q, k, "v"], ["o"], domain=MSFT, num_heads=H,
                                  scale=dh ** -0.5))
    return _model(nodes, inits, H * dh)


def tiled(H: int, dh: int, T: int, block: int) -> onnx.ModelProto:
    """Query-block-tiled MatMul -> Softmax -> MatMul over blocks of `block` query rows (static T)."""
    sizes = [block] * (T // block) + ([T % block] if T % block else [])
    inits = [_ints("heads", [0, 0, H, dh]), _ints("flat", [0, 0, H * dh]), _ints("sizes", sizes),
             numpy_helper.from_array(np.asarray(dh ** -0.5, np.float32), "scale")]
    nodes = [helper.make_node("Reshape", ["q", "heads"], ["q4"]),
             helper.make_node("Transpose", ["q4"], ["qh"], perm=[0, 2, 1, 3]),              # (1, H, T, dh)
             helper.make_node("Mul", ["qh", "scale"], ["qs"]),
             helper.make_node("Reshape", ["k", "heads"], ["k4"]),
             helper.make_node("Transpose", ["k4"], ["kt"], perm=[0, 2, 3, 1]),              # (1, H, dh, T)
             helper.make_node("Reshape", ["v", "heads"], ["v4"]),
             helper.make_node("Transpose", ["v4"], ["vh"], perm=[0, 2, 1, 3])]              # (1, H, T, dh)
    blocks = [f"qb{j}" for j in range(len(sizes))]
    nodes.append(helper.make_node("Split", ["qs", "sizes"], blocks, axis=2))                # (1, H, Bq, dh)
    for j, qb in enumerate(blocks):
        nodes += [helper.make_node("MatMul", [qb, "kt"], [f"s{j}"]),                        # (1, H, Bq, T)
                  helper.make_node("Softmax", [f"s{j}"], [f"p{j}"], axis=-1),
                  helper.make_node("MatMul", [f"p{j}", "vh"], [f"ob{j}"])]                  # (1, H, Bq, dh)
    nodes += [helper.make_node("Concat", [f"ob{j}" for j in range(len(sizes))], ["oh"], axis=2),
              helper.make_node("Transpose", ["oh"], ["ot"], perm=[0, 2, 1, 3]),             # (1, T, H, dh)
              helper.make_node("Reshape", ["ot", "flat"], ["o"])]                           # (1, T, H*dh)
    return _model(nodes, inits, H * dh)


def attention23(H: int, dh: int) -> onnx.ModelProto:
    node = helper.make_node("Attention", ["q", "k", "v"], ["o"], q_num_heads=H, kv_num_heads=H, scale=dh ** -0.5)
    return _model([node], [], H * dh, opset=23)


def gqa(H: int, dh: int) -> onnx.ModelProto:
    """GroupQueryAttention, non-causal, kv_num_heads = num_heads; total length and seqlens_k from q."""
    one = numpy_helper.from_array(np.asarray(1, np.int32), "one")
    nodes = [helper.make_node("Shape", ["q"], ["shape"]),
             helper.make_node("Gather", ["shape", "axis1"], ["t64"]),                       # T
             helper.make_node("Cast", ["t64"], ["total"], to=TensorProto.INT32),
             helper.make_node("Sub", ["total", "one"], ["last"]),
             helper.make_node("Reshape", ["last", "batch1"], ["seqlens_k"]),                 # (1,) = T - 1
             helper.make_node("GroupQueryAttention", ["q", "k", "v", "", "", "seqlens_k", "total"],
                              ["o", "present_k", "present_v"], domain=MSFT, num_heads=H, kv_num_heads=H,
                              causal=0, scale=dh ** -0.5)]
    return _model(nodes, [_ints("axis1", 1), _ints("batch1", [1]), one], H * dh)


def sdpa(feeds: dict, H: int, dh: int):
    """torch's SDPA on the same q, k, v: a zero-argument callable returning (1, T, H*dh)."""
    q, k, v = (torch.from_numpy(feeds[n]).view(1, -1, H, dh).transpose(1, 2) for n in "qkv")  # (1, H, T, dh)

    def run():
        with torch.inference_mode():
            return torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)
    return run


def bench(T: int, opts, work: Path) -> list[dict]:
    H, dh = opts.heads, opts.head_size
    rng = np.random.default_rng(T)
    feeds = {n: rng.standard_normal((1, T, H * dh), dtype=np.float32) for n in "qkv"}
    models = {"mha": mha(H, dh), **{f"tiled-{b}": tiled(H, dh, T, b) for b in opts.blocks if b <= T},
              **{f"mha-padqk-{p}": mha(H, dh, p) for p in opts.pads}, "attention23": attention23(H, dh),
              "gqa": gqa(H, dh)}
    eager = sdpa(feeds, H, dh)
    ref = eager().numpy()
    sessions, parity = {}, {}
    for name, model in models.items():
        onnx.save(model, str(work / f"{name}.onnx"))
        sessions[name] = make_session(work / f"{name}.onnx", threads=opts.threads)
        parity[name] = float(np.abs(sessions[name].run(None, feeds)[0] - ref).max())
    runs: dict[str, list] = {"sdpa": [], **{n: [] for n in sessions}}
    for i in range(opts.rounds):
        kw = dict(warmup=2 if i == 0 else 1, repeats=opts.repeats)
        with torch_threads(opts.threads):
            runs["sdpa"].append(LatencyResult(measure(eager, **kw), {}))
        for name, sess in sessions.items():
            runs[name].append(ort_latency(sess, feeds, **kw))
    rows = []
    for name, results in runs.items():
        s = LatencyResult.combine(results).stats
        cpu = s.cpu_p50_ms if opts.threads == 1 else s.proc_p50_ms
        rows.append({"T": T, "path": name, "cpu_p50_ms": cpu, "wall_p50_ms": s.p50_ms, "max_abs_diff": parity.get(name, 0.0)})
    base = {r["path"]: r["cpu_p50_ms"] for r in rows}
    for r in rows:
        r["vs_sdpa"], r["vs_mha"] = r["cpu_p50_ms"] / base["sdpa"], r["cpu_p50_ms"] / base["mha"]
        print(f"T={T:5d} {r['path']:16s} cpu {r['cpu_p50_ms']:8.2f} ms  /sdpa {r['vs_sdpa']:.2f}  /mha "
              f"{r['vs_mha']:.2f}  wall {r['wall_p50_ms']:8.2f} ms  max|diff| {r['max_abs_diff']:.1e}", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lens", default="2048")
    ap.add_argument("--blocks", default="32,64,128,256,512", help="query rows per block of the tiled graphs")
    ap.add_argument("--pads", default="16,48", help="zero columns added per head to q and k (mha-padqk)")
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--head-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per path and round")
    opts = ap.parse_args()
    opts.blocks = [int(b) for b in opts.blocks.split(",") if b]
    opts.pads = [int(p) for p in opts.pads.split(",") if p]
    with tempfile.TemporaryDirectory(prefix="tiled_attention_") as tmp:
        for T in (int(t) for t in opts.lens.split(",")):
            bench(T, opts, Path(tmp))


if __name__ == "__main__":
    main()
