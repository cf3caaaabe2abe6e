"""Why ONNX Runtime is (not) faster than PyTorch eager for an attention layer: the evidence.

For softmax, linear and local(window=16) layers of the example specs' shape (d_model 64, 4 heads;
plus d_model 256) at T = 512 and 2048, batch 1, 2 threads, with a padding mask input:
  - ORT p50 at each graph optimisation level (disable / basic / extended / all) next to eager p50,
    and the fused (contrib) ops ORT created at 'all';
  - ORT's own profiler: time per op type at 'all' (where the time goes);
  - softmax only, alternatives to the opset-18 dynamo graph (MatMul + Softmax): the opset-23 ONNX
    `Attention` op (torch exports SDPA to it), with and without the padding mask, and hand-built graphs
    with ORT's contrib ops com.microsoft.MultiHeadAttention and com.microsoft.Attention (fused QKV), all
    with the layer's own weights and checked against it.
Writes benchmarks/out/deploy_latency_explain.{md,json}.

    .venv/bin/python benchmarks/deploy_latency_explain.py [--lens 512,2048] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from exporters.latency import LatencyResult, env_fingerprint, ort_latency, torch_latency  # noqa: E402
from exporters.latency_table import attention_module, export_layer  # noqa: E402
from exporters.onnx_export import batch_seq_axes, export_onnx  # noqa: E402
from exporters.runtime import GRAPH_OPT_LEVELS, make_session, op_counts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TYPES = ["softmax", "linear", {"local": {"window": 16}}]


def profile_ops(path: Path, feeds: dict, threads: int, runs: int = 10) -> dict[str, float]:
    """Share (%) of ORT's kernel time per op type (its profiler, graph_opt all; profiling slows the
    run itself, so shares, not absolute times)."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.with_suffix(""))
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for _ in range(3 + runs):
        sess.run(None, feeds)
    events = json.loads(Path(sess.end_profiling()).read_text())
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3
    total = sum(per_op.values()) or 1.0
    return {k: 100 * v / total for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}


def alternating(module, inputs, sess, feeds, threads: int, repeats: int = 9, rounds: int = 3):
    eager, ortr = [], []
    for i in range(rounds):
        kw = dict(warmup=2 if i == 0 else 1, repeats=repeats // rounds, budget_s=4.0)
        eager.append(torch_latency(module, inputs, threads=threads, **kw))
        ortr.append(ort_latency(sess, feeds, **kw))
    return LatencyResult.combine(eager).stats.p50_ms, LatencyResult.combine(ortr).stats.p50_ms


class NoMask(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return self.layer(x, None)                                    # (B, T, D)


def _w(name, t):
    return numpy_helper.from_array(t.detach().numpy().astype(np.float32), name)


def contrib_graph(layer, path: Path, fused_qkv: bool) -> Path:
    """x (B, T, D), mask (B, T) bool -> y through com.microsoft.{MultiHeadAttention | Attention}."""
    D, H = layer.d_model, layer.n_heads
    inits, nodes = [], [helper.make_node("Cast", ["mask"], ["kpm"], to=TensorProto.INT32)]
    if fused_qkv:
        w = torch.cat([layer.q_proj.weight, layer.k_proj.weight, layer.v_proj.weight]).T   # (D, 3D)
        b = torch.cat([layer.q_proj.bias, layer.k_proj.bias, layer.v_proj.bias])            # (3D,)
        inits += [_w("w_qkv", w), _w("b_qkv", b)]
        nodes.append(helper.make_node("Attention", ["x", "w_qkv", "b_qkv", "kpm"], ["h"], domain="com.microsoft",
                                      num_heads=H))
    else:
        for n, proj in (("q", layer.q_proj), ("k", layer.k_proj), ("v", layer.v_proj)):
            inits += [_w(f"w_{n}", proj.weight.T), _w(f"b_{n}", proj.bias)]
            nodes += [helper.make_node("MatMul", ["x", f"w_{n}"], [f"{n}0"]),
                      helper.make_node("Add", [f"{n}0", f"b_{n}"], [n])]
        nodes.append(helper.make_node("MultiHeadAttention", ["q", "k", "v", "", "kpm"], ["h"],
                                      domain="com.microsoft", num_heads=H))
    inits += [_w("w_o", layer.out_proj.weight.T), _w("b_o", layer.out_proj.bias)]
    nodes += [helper.make_node("MatMul", ["h", "w_o"], ["y0"]), helper.make_node("Add", ["y0", "b_o"], ["y"])]
    graph = helper.make_graph(nodes, "contrib", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", D]),
                                                  helper.make_tensor_value_info("mask", TensorProto.BOOL, ["B", "T"])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", "T", D])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                      helper.make_opsetid("com.microsoft", 1)]), str(path))
    return path


def softmax_alternatives(layer, x, mask, threads: int, work: Path) -> dict:
    """ORT p50 and max |diff| vs the layer for the opset-23 Attention op and the contrib ops."""
    out = {}
    with torch.no_grad():
        ref = layer(x, mask).numpy()
    feeds = {"x": x.numpy(), "mask": mask.numpy()}
    variants = {}
    try:
        variants["opset23 Attention + mask"] = export_onnx(
            layer, (torch.randn(2, 16, layer.d_model), torch.ones(2, 16, dtype=torch.bool)), work / "o23m.onnx",
            input_names=["x", "mask"], output_names=["y"], dynamic_axes=batch_seq_axes("x", "mask"), opset=23,
            overwrite=True, fallback=False)
    except Exception as err:  # noqa: BLE001
        out["opset23 Attention + mask"] = {"error": f"export: {str(err).splitlines()[0][:200]}"}
    try:
        variants["opset23 Attention, no mask"] = export_onnx(
            NoMask(layer), (torch.randn(2, 16, layer.d_model),), work / "o23.onnx", input_names=["x"],
            output_names=["y"], dynamic_axes=batch_seq_axes("x"), opset=23, overwrite=True, fallback=False)
    except Exception as err:  # noqa: BLE001
        out["opset23 Attention, no mask"] = {"error": f"export: {str(err).splitlines()[0][:200]}"}
    variants["com.microsoft.MultiHeadAttention"] = contrib_graph(layer, work / "mha.onnx", fused_qkv=False)
    variants["com.microsoft.Attention (fused QKV)"] = contrib_graph(layer, work / "att.onnx", fused_qkv=True)
    for name, path in variants.items():
        try:
            sess = make_session(path, threads=threads)
            names = {i.name for i in sess.get_inputs()}
            f = {k: v for k, v in feeds.items() if k in names}
            got = sess.run(None, f)[0]
            with torch.no_grad():
                expect = ref if "mask" in names else layer(x, None).numpy()
            out[name] = {"ort_ms": ort_latency(sess, f, warmup=2, repeats=9, budget_s=4.0).stats.p50_ms,
                         "max_abs_diff": float(np.abs(got - expect).max()), "ops": op_counts(path)}
        except Exception as err:  # noqa: BLE001 - e.g. ORT refusing the opset-23 mask shape
            out[name] = {"error": str(err).replace("\n", " ").strip()[-400:]}
    return out


def explain(cand, d_model: int, T: int, threads: int, work: Path) -> dict:
    from nasgraph.ops.attention import candidate_label, normalize_candidate

    label = candidate_label(*normalize_candidate(cand))
    torch.manual_seed(0)
    layer = attention_module(cand, d_model, 4)
    path = export_layer(layer, work / "layer.onnx", d_model, None)
    x, mask = torch.randn(1, T, d_model), torch.ones(1, T, dtype=torch.bool)          # (1, T, D), (1, T)
    mask[:, T - T // 8:] = False                                                        # some padding
    feeds = {"x": x.numpy(), "mask": mask.numpy()}
    row = {"attention": label, "d_model": d_model, "T": T, "by_level": {}}
    for level in GRAPH_OPT_LEVELS:
        sess = make_session(path, threads=threads, graph_opt=level, optimized_model_path=work / f"{level}.onnx")
        names = {i.name for i in sess.get_inputs()}
        eager, ort_ms = alternating(layer, (x, mask), sess, {k: v for k, v in feeds.items() if k in names}, threads)
        row["by_level"][level] = ort_ms
        row.setdefault("eager_ms", []).append(eager)
    row["eager_ms"] = float(np.median(row["eager_ms"]))
    row["fused_at_all"] = sorted(k for k in op_counts(work / "all.onnx") if "." in k)
    row["exported_ops"] = op_counts(path)
    row["profile_share"] = profile_ops(path, {k: v for k, v in feeds.items() if k in names}, threads)
    if label == "softmax":
        row["alternatives"] = softmax_alternatives(layer, x, mask, threads, work)
    print(json.dumps({k: v for k, v in row.items() if k not in ("exported_ops",)}, default=str)[:600], flush=True)
    return row


def markdown(rows, env, opts, load) -> str:
    lines = [f"# Why ORT is (not) faster: attention layers, batch 1, {opts.threads} threads, padding mask", "",
             f"env {env['hash']}: {env['cpu']}, torch {env['torch']}, onnxruntime {env['onnxruntime']}; load average "
             f"{load[0]:.1f} -> {load[1]:.1f}. p50 ms; eager = median over the four level runs.", "",
             "| layer | T | eager | ORT disable | basic | extended | all | all/eager | fused at 'all' | ORT kernel time by op |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lv = r["by_level"]
        top = ", ".join(f"{k} {v:.0f}%" for k, v in list(r["profile_share"].items())[:4])
        lines.append(f"| {r['attention']} d{r['d_model']} | {r['T']} | {r['eager_ms']:.3g} | " +
                     " | ".join(f"{lv[l]:.3g}" for l in GRAPH_OPT_LEVELS) +
                     f" | {lv['all'] / r['eager_ms']:.2f} | {', '.join(r['fused_at_all']) or '-'} | {top} |")
    lines += ["", "## Softmax: other ONNX forms of the same layer (ORT p50 ms, |diff| vs the layer)", "",
              "| layer | T | opset 18 dynamo (all) | variant | ORT ms | max abs diff / error |", "|---|---|---|---|---|---|"]
    for r in rows:
        for name, v in r.get("alternatives", {}).items():
            res = f"{v['max_abs_diff']:.2g}" if "max_abs_diff" in v else "error: ..." + v["error"][-150:]
            lines.append(f"| softmax d{r['d_model']} | {r['T']} | {r['by_level']['all']:.3g} | {name} | "
                         f"{v.get('ort_ms', float('nan')):.3g} | {res} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lens", default="512,2048")
    ap.add_argument("--d-models", default="64,256")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    opts = ap.parse_args()
    load0, rows = os.getloadavg()[0], []
    with tempfile.TemporaryDirectory(prefix="deploy_explain_") as tmp:
        for d_model in [int(d) for d in opts.d_models.split(",")]:
            for cand in TYPES:
                for T in [int(t) for t in opts.lens.split(",")]:
                    rows.append(explain(cand, d_model, T, opts.threads, Path(tmp)))
    env, load = env_fingerprint(), (load0, os.getloadavg()[0])
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "deploy_latency_explain.json").write_text(json.dumps({"env": env, "load_avg": load, "rows": rows},
                                                                     indent=1, default=str))
    md = markdown(rows, env, opts, load)
    (opts.out / "deploy_latency_explain.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
