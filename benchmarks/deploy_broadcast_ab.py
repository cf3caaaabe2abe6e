"""Before/after of the export's broadcast pass (exporters.broadcast_ops), against eager, same run.

Each (spec, attention) derived model of `deploy_latency.py` (random weights, unpadded graph, batch 1,
1 thread) is exported twice: with `widen_narrow_broadcasts` off ("before") and on ("after", what
`nasgraph export` writes). Eager, before and after alternate in --rounds rounds; the figures are
the calling thread's CPU time p50 and the ORT/eager ratios of both graphs.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/deploy_broadcast_ab.py \
        --specs mixformer,text_bytes --attention "cosformer,linear" --lens 2048
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks.deploy_latency import SPECS, derived_models  # noqa: E402
from exporters.bench import export_twin  # noqa: E402
from exporters.latency import LatencyResult, ort_latency, torch_latency  # noqa: E402
from exporters.bench_subjects import EagerLogits  # noqa: E402
from exporters.model_export import unpadded_path  # noqa: E402
from exporters.runtime import make_session, op_counts  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def export_both(doc, model, work: Path, stem: str) -> dict[str, Path]:
    with mock.patch("exporters.fast_ops.widen_narrow_broadcasts", lambda m: 0):
        before = unpadded_path(export_twin(doc, model, work / f"{stem}-before.onnx"))
    return {"before": before, "after": unpadded_path(export_twin(doc, model, work / f"{stem}-after.onnx"))}


def ab_point(model, files: dict[str, Path], T: int, rounds: int, repeats: int) -> dict:
    tokens = torch.randint(2, model.ctx.vocab_size, (1, T), generator=torch.Generator().manual_seed(T))
    module, feeds = EagerLogits(model), {"tokens": tokens.numpy()}
    sessions = {k: make_session(p, threads=1) for k, p in files.items()}
    runs: dict[str, list] = {"eager": [], **{k: [] for k in sessions}}
    for i in range(rounds):
        kw = dict(warmup=2 if i == 0 else 1, repeats=repeats)
        runs["eager"].append(torch_latency(module, (tokens,), threads=1, **kw))
        for k, s in sessions.items():
            runs[k].append(ort_latency(s, feeds, **kw))
    cpu = {k: LatencyResult.combine(v).stats.cpu_p50_ms for k, v in runs.items()}
    return {"T": T, "cpu_ms": cpu, "ratio_before": cpu["before"] / cpu["eager"], "ratio_after": cpu["after"] / cpu["eager"],
            "widened": op_counts(files["after"]).get("MatMul", 0) - op_counts(files["before"]).get("MatMul", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--attention", default="", help="only these candidates, comma-separated labels")
    ap.add_argument("--lens", default="2048")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    opts = ap.parse_args()
    lens = [int(t) for t in opts.lens.split(",")]
    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory(prefix="deploy_ab_") as tmp:
        for spec in opts.specs.split(","):
            for label, doc, model in derived_models(spec, max(lens)):
                if opts.attention and label not in opts.attention.split(","):
                    continue
                files = export_both(doc, model, Path(tmp), f"{spec}-{label}".replace("/", "_"))
                for T in lens:
                    row = {"spec": spec, "attention": label, **ab_point(model, files, T, opts.rounds, opts.repeats)}
                    rows.append(row)
                    c = row["cpu_ms"]
                    print(f"{spec:22s} {label:26s} T={T}: CPU eager {c['eager']:.2f}, ORT before {c['before']:.2f}, after "
                          f"{c['after']:.2f} ms; ORT/eager {row['ratio_before']:.2f} -> {row['ratio_after']:.2f} "
                          f"({row['widened']} operands widened)", flush=True)
    opts.out.mkdir(parents=True, exist_ok=True)
    (opts.out / "deploy_broadcast_ab.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
