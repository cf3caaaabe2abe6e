"""attention_scaling's child process: one attention type exported once, then timed at every length.

Runs in a spawned process (benchmarks/attention_scaling.py isolates each type: a crash or a
timeout costs that type only).
"""
from __future__ import annotations

import multiprocessing as mp
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from exporters.latency import LatencyResult, ort_latency, peak_rss_mb, torch_latency  # noqa: E402
from exporters.fast_ops import export_translations  # noqa: E402
from exporters.onnx_export import export_onnx  # noqa: E402
from exporters.runtime import GRAPH_OPT_LEVELS, make_session, op_counts  # noqa: E402

BASELINE = "nn.MultiheadAttention"
D_MODEL, N_HEADS = 256, 4


def statistic(opts: dict) -> str:
    """The per-call figure compared: wall-clock p50, or (--clock cpu) the calling thread's CPU time p50."""
    return "cpu_p50_ms" if opts["clock"] == "cpu" else "p50_ms"


def parse_variant(name: str) -> tuple[str, dict]:
    """"retention@block=0@chunk=32" -> ("retention", {"block": 0, "chunk": 32}): a type with config
    overrides (values parsed as JSON where they parse, else kept as strings), for before/after rows."""
    import json

    base, *pairs = name.split("@")
    options = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return base, options


def build_module(name: str, max_len: int, causal: bool = False):
    import torch
    from nasgraph.attention import build, get

    name, options = parse_variant(name)

    if name == BASELINE:
        class MHA(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = torch.nn.MultiheadAttention(D_MODEL, N_HEADS, batch_first=True)

            def forward(self, x):                                    # x: (B, T, D)
                return self.attn(x, x, x, need_weights=False)[0]     # (B, T, D)
        return MHA().eval()
    caps = get(name).caps
    causal = causal or not caps.noncausal                            # causal-only types: always causal
    return build(name, D_MODEL, N_HEADS, causal=causal, max_len=max_len if caps.bounded else None,
                 **options).eval()


def run_type(name: str, lengths: list[int], opts: dict, out: mp.Queue) -> None:
    """Child: export once, then time every length in `rounds` rounds (each round all lengths, shortest
    first), and send to `out`: ("info", export info), ("start", T) before each length of a round, ("row",
    result) per length after the first round and again, pooled, at the end (an error stops that length
    and the longer ones), then ("done", None)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    torch.set_num_threads(opts["threads"])
    model = build_module(name, max(lengths), opts["causal"])
    work = Path(tempfile.mkdtemp(prefix="attn_scaling_"))
    onnx_path, info = work / "model.onnx", {"type": name}
    x0 = torch.randn(1, lengths[0], D_MODEL)
    try:
        export_onnx(model, (x0,), onnx_path, input_names=["x"], output_names=["y"],
                    dynamic_axes={"x": {1: "seq"}}, axis_max={"seq": max(lengths)}, fallback=False,
                    translations=export_translations() if opts.get("ort_ops") else None)
        sess = make_session(onnx_path, threads=opts["threads"], graph_opt=opts["graph_opt"],
                            optimized_model_path=work / "optimized.onnx")
        with torch.no_grad():
            info["parity_max_abs_diff"] = float(np.abs(model(x0).numpy() - sess.run(None, {"x": x0.numpy()})[0]).max())
        info["ops_exported"] = op_counts(onnx_path)
        info["ops_optimized"] = op_counts(work / "optimized.onnx")
    except Exception as err:  # noqa: BLE001 - recorded, eager timings still useful
        onnx_path, info["export_error"] = None, f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    out.put(("info", info))
    xs, rows, timings, sessions = {}, {}, {}, {}
    rounds = max(1, min(opts["rounds"], opts["repeats"]))
    for r in range(rounds):  # every length once per round: a change of machine load hits all lengths alike
        for T in list(xs) if r else lengths:
            out.put(("start", T))
            try:
                if r == 0:
                    xs[T], rows[T], timings[T] = torch.randn(1, T, D_MODEL), {"type": name, "T": T}, ([], [])
                    sessions[T] = _first_round(model, xs[T], onnx_path, rows[T], opts)
                _timed_round(model, xs[T], sessions[T], timings[T], rounds, opts)
            except Exception as err:  # noqa: BLE001 - e.g. out of memory inside torch
                rows[T]["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
                traceback.print_exc()
            if "error" in rows[T]:
                out.put(("row", rows[T]))
                xs = {t: xs[t] for t in xs if t < T}                   # this length and longer ones: no more
                sessions = {t: sessions[t] for t in xs}
                break
            if r == 0:                                                 # kept if a later round dies
                out.put(("row", _pooled_row(xs[T], onnx_path, rows[T], timings[T], None)))
    sessions.clear()
    for T in xs:
        out.put(("row", _pooled_row(xs[T], onnx_path, rows[T], timings[T], opts)))
    out.put(("done", None))


def _first_round(model, x, path: Path | None, row: dict, opts: dict):
    """Peak memory of one eager forward and of the first run of a fresh ORT session (this T's
    activations, not an arena grown earlier) into row; returns the session, warmed up (None without
    an export). A fresh session's first two runs grow its arena: ~4,000 page faults (~9 ms) at T=8192
    in the second one, so it is run twice before any timing."""
    import torch

    with torch.no_grad():
        row["eager_peak_mb"] = peak_rss_mb(lambda: model(x)).delta_mb
    if path is None:
        return None
    sess, feeds = make_session(path, threads=opts["threads"], graph_opt=opts["graph_opt"]), {"x": x.numpy()}
    row["ort_peak_mb"] = peak_rss_mb(lambda: sess.run(None, feeds)).delta_mb
    sess.run(None, feeds)
    return sess


def _timed_round(model, x, sess, timings: tuple[list, list], rounds: int, opts: dict) -> None:
    """One round at one length: eager, then ORT (sess, kept from round to round; None: eager only),
    appended to timings (eager list, ORT list)."""
    per_round = dict(repeats=max(1, opts["repeats"] // rounds), warmup=1, budget_s=opts["budget_s"] / rounds)
    timings[0].append(torch_latency(model, (x,), threads=opts["threads"], **per_round))
    if sess is not None:
        timings[1].append(ort_latency(sess, {"x": x.numpy()}, **per_round))


def _pooled_row(x, path: Path | None, row: dict, timings: tuple[list, list], opts: dict | None) -> dict:
    """The row of one length: eager and ORT statistics pooled over the rounds so far and (opts given,
    T == explain_t) ORT at each graph optimisation level."""
    eager, ort = timings
    row = {**row, "eager": LatencyResult.combine(eager).row()}
    if not ort:
        return row
    row["ort"] = LatencyResult.combine(ort).row()
    if opts and x.shape[1] == opts["explain_t"]:  # why is ORT slower or faster: the graph at each optimisation level
        row["ort_by_level_ms"] = {
            level: ort_latency(make_session(path, threads=opts["threads"], graph_opt=level), {"x": x.numpy()},
                               repeats=max(3, opts["repeats"] // 2),
                               budget_s=opts["budget_s"]).row()[statistic(opts)]
            for level in GRAPH_OPT_LEVELS}
    return row
