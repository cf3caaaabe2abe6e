"""int8 against fp32 in ONNX Runtime, scheme by scheme, with per-op-type profiles.

For each (spec, attention candidate) derived model of `deploy_latency.py` (random weights, the
unpadded graph as `nasgraph predict` runs it at batch 1): every scheme of
exporters.quantize_schemes.SCHEMES, timed against fp32 at T=--len, 1 thread, in alternating rounds;
the ratio is the calling thread's CPU time p50 (the work of a call, steady on a shared machine).
Then ORT's profiler, per op type (least time per node over --runs), for fp32 and every scheme, so
the report says where the int8 graph still spends its time. Static schemes are calibrated here on
random tokens of length T (latency does not depend on the ranges; `nasgraph export` calibrates on
the task's train split). Accuracy is not measured here (random weights): see tests and the findings.

Writes benchmarks/out/deploy_int8.{md,json}.
    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/deploy_int8.py \
        --specs listops_homogeneous --attention "softmax,linear,local(window=16)"
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.deploy_latency import SPECS, derived_models  # noqa: E402
from benchmarks.deploy_latency_profile import ort_profile  # noqa: E402
from exporters.bench import export_twin  # noqa: E402
from exporters.latency import LatencyResult, ort_latency  # noqa: E402
from exporters.model_export import unpadded_path  # noqa: E402
from exporters.quantize_schemes import SCHEMES, quantize_with  # noqa: E402
from exporters.runtime import make_session, op_counts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


class RandomRows:
    """A stand-in calibration split: `n` rows of random token ids of length T."""

    def __init__(self, vocab: int, T: int, n: int = 16):
        g = torch.Generator().manual_seed(1)
        self.ids = [torch.randint(2, vocab, (T,), generator=g).tolist() for _ in range(n)]

    def __len__(self) -> int:
        return len(self.ids)


def variants(path: Path, vocab: int, T: int, schemes: list[str], work: Path) -> dict[str, Path]:
    out = {"fp32": path}
    for name in schemes:
        out[name] = quantize_with(name, path, work / f"{name}.onnx", calibration=RandomRows(vocab, T))
    return out


def time_variants(files: dict[str, Path], feeds: dict, rounds: int, repeats: int, budget_s: float) -> dict:
    """CPU-time p50 per variant, the variants alternating in each round (1 thread)."""
    sessions = {k: make_session(p, threads=1) for k, p in files.items()}
    runs: dict[str, list] = {k: [] for k in sessions}
    for i in range(rounds):
        for k, s in sessions.items():
            runs[k].append(ort_latency(s, feeds, warmup=3 if i == 0 else 1, repeats=repeats, budget_s=budget_s))
    stats = {k: LatencyResult.combine(v).stats for k, v in runs.items()}
    return {k: {"cpu_p50_ms": s.cpu_p50_ms, "p50_ms": s.p50_ms, "ratio_cpu": s.cpu_p50_ms / stats["fp32"].cpu_p50_ms}
            for k, s in stats.items()}


def bench_model(spec, label, doc, model, opts, work: Path) -> dict:
    torch.set_num_threads(1)
    T = opts.len
    path = unpadded_path(export_twin(doc, model, work / f"{spec}-{label}.onnx".replace("/", "_")))
    files = variants(path, model.ctx.vocab_size, T, opts.schemes, work)
    tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T)).numpy()
    feeds = {"tokens": tokens}
    times = time_variants(files, feeds, opts.rounds, opts.repeats, opts.budget_s)
    profiles = {k: ort_profile(p, feeds, opts.runs) for k, p in files.items()} if opts.runs else {}
    row = {"spec": spec, "attention": label, "T": T, "times": times, "profiles": profiles,
           "bytes": {k: p.stat().st_size + sum(f.stat().st_size for f in p.parent.glob(p.name + ".data"))
                     for k, p in files.items()},
           "quant_ops": {k: {op: n for op, n in op_counts(p).items() if "Quant" in op or "Integer" in op or "QLinear" in op}
                         for k, p in files.items()}}
    print(f"{spec} {label} T={T}: fp32 {times['fp32']['cpu_p50_ms']:.3f} ms CPU; "
          + ", ".join(f"{k} {v['ratio_cpu']:.2f}" for k, v in times.items() if k != "fp32"), flush=True)
    for k, prof in profiles.items():
        print(f"  {k:18s} profile {sum(prof.values()):.2f} ms: " + ", ".join(f"{o} {ms:.3f}" for o, ms in list(prof.items())[:8]))
    return row


def markdown(rows, schemes, load, overrides=()) -> str:
    lines = ["# int8 vs fp32 (ONNX Runtime, 1 thread, CPU time p50 ratio, same run)", "",
             f"load average {load[0]:.1f} -> {load[1]:.1f}; unpadded graph, batch 1, random weights"
             + (f"; spec settings {', '.join(overrides)}" if overrides else "") + ".", "",
             "| spec | attention | T | fp32 ms | " + " | ".join(schemes) + " |", "|---|---|---|---|" + "---|" * len(schemes)]
    for r in rows:
        t = r["times"]
        lines.append(f"| {r['spec']} | {r['attention']} | {r['T']} | {t['fp32']['cpu_p50_ms']:.3f} | "
                     + " | ".join(f"{t[s]['ratio_cpu']:.2f}" for s in schemes) + " |")
    lines += ["", "Per op type (ms, ORT profiler, least per node), fp32 -> int8 (first scheme):", ""]
    for r in rows:
        for k, prof in r["profiles"].items():
            lines.append(f"- {r['spec']} {r['attention']} {k}: " + ", ".join(f"{o} {ms:.3f}" for o, ms in list(prof.items())[:9]))
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--attention", default="", help="only these candidates, comma-separated labels")
    ap.add_argument("--schemes", default=",".join(SCHEMES), help=f"of: {', '.join(SCHEMES)}")
    ap.add_argument("--len", type=int, default=512)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="spec setting applied to every derived model, e.g. model.d_model=256 (repeatable)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=8)
    ap.add_argument("--budget-s", type=float, default=2.0, help="cap on timed calls per variant and round")
    ap.add_argument("--runs", type=int, default=4, help="profiled runs per variant (0: no profile)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    opts = ap.parse_args()
    opts.schemes = [s for s in opts.schemes.split(",") if s]
    unknown = [s for s in opts.schemes if s not in SCHEMES]
    if unknown:
        ap.error(f"unknown scheme(s) {', '.join(unknown)}; valid: {', '.join(SCHEMES)}")
    load0, rows = os.getloadavg()[0], []
    with tempfile.TemporaryDirectory(prefix="deploy_int8_") as tmp:
        for spec in opts.specs.split(","):
            for label, doc, model in derived_models(spec, opts.len, tuple(opts.set)):
                if opts.attention and label not in opts.attention.split(","):
                    continue
                rows.append(bench_model(spec, label, doc, model, opts, Path(tmp)))
    load = (load0, os.getloadavg()[0])
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "deploy_int8.json").write_text(json.dumps({"load_avg": load, "set": opts.set, "rows": rows}, indent=1))
    md = markdown(rows, opts.schemes, load, opts.set)
    (opts.out / "deploy_int8.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
