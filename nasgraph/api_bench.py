"""The Python API's benchmark steps (re-exported by nasgraph.api): ONNX Runtime vs eager latency of a
model, a spec's candidates or a train run, and prefill/decode latency of a causal language model."""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from nasgraph.errors import NasgraphError


@dataclass(frozen=True)
class BenchResult:
    out: Path
    report: dict          # report.json
    written: list[Path] = field(default_factory=list)

    def to_json(self) -> dict:
        return self.report


def bench_decode(target: str | Path, out: str | Path, *, prompt_lens: Sequence[int] | None = None,
                 contexts: Sequence[int] | None = None, threads: int | None = None, repeats: int | None = None,
                 warmup: int | None = None, overwrite: bool = False, progress: bool = True) -> BenchResult:
    """Prefill latency against prompt length, per-token decode latency, tokens/s and state memory against
    context length, of a causal train run or spec (its candidates when it has choice points).

    Writes report.json, report.md and decode.png into `out`.
    """
    from exporters.decode_bench import DEFAULT_CONTEXTS, DEFAULT_PROMPTS, DecodeGrid, bench_decode as measure
    from exporters.decode_report import write_decode_report
    from exporters.latency_table import usable_cores
    from nasgraph.runfolder import claim

    target, out = Path(target), Path(out)
    if target.suffix == ".onnx" or not target.exists():
        raise NasgraphError(f"{target}: --decode takes a train run folder or a spec of a causal language model")
    grid = DecodeGrid(sorted(set(prompt_lens or DEFAULT_PROMPTS)), sorted(set(contexts or DEFAULT_CONTEXTS)),
                      threads or usable_cores(), 3 if warmup is None else warmup, repeats or 20)
    if grid.threads < 1 or grid.repeats < 1 or grid.warmup < 0:
        raise NasgraphError(f"bad settings: threads {grid.threads}, repeats {grid.repeats}, warmup {grid.warmup} "
                            f"(threads and repeats >= 1, warmup >= 0)")
    claim(out, "bench", replace=overwrite)
    report = measure(target, grid, progress=progress)
    return BenchResult(out, report, write_decode_report(report, out))


def bench(target: str | Path, out: str | Path, *, batches: Sequence[int] | None = None,
          seq_lens: Sequence[int] | None = None, threads: int | None = None, repeats: int | None = None,
          warmup: int | None = None, graph_opt: str = "all", provider: str = "cpu", candidates: bool = False,
          runs: Sequence[str | Path] = (), overwrite: bool = False, progress: bool = True) -> BenchResult:
    """ONNX Runtime vs PyTorch eager latency of an .onnx, a spec (its candidates) or a train run.

    Unset settings come from the spec's `bench:` section; `runs` adds an accuracy vs latency vs
    FLOPs plot of those train/search runs. Writes report.json, report.md and plots into `out`.
    """
    from exporters.bench import bench as measure, make_grid
    from exporters.bench_report import write_report
    from exporters.pareto import run_point
    from exporters.runtime import GRAPH_OPT_LEVELS, PROVIDERS, read_metadata
    from nasgraph.runfolder import claim, kind_of

    target, out = Path(target), Path(out)
    if threads is not None and threads < 1:
        raise NasgraphError(f"--threads must be >= 1, got {threads}")
    if graph_opt not in GRAPH_OPT_LEVELS or provider not in PROVIDERS:
        raise NasgraphError(f"graph_opt {graph_opt!r} / provider {provider!r}: valid: {', '.join(GRAPH_OPT_LEVELS)} "
                            f"/ {', '.join(PROVIDERS)}")
    if not target.exists():
        raise NasgraphError(f"{target}: no such .onnx file, spec or run folder")
    bad_runs = [str(r) for r in runs if kind_of(r) not in ("train", "search")]
    if bad_runs:
        raise NasgraphError(f"--runs {', '.join(bad_runs)}: not a train or search run folder")
    grid = make_grid(target, batches=batches, seq_lens=seq_lens, threads=threads, repeats=repeats, warmup=warmup,
                     graph_opt=graph_opt, provider=provider)
    claim(out, "bench", replace=overwrite)   # checked before the benchmark: a bad --out must not cost a whole run
    with tempfile.TemporaryDirectory(prefix="nasgraph-bench-") as tmp:
        report = measure(target, grid, candidates=candidates or None, progress=progress, workdir=tmp)
        exported = {}  # a run whose model is the bench target is not exported again
        if target.suffix == ".onnx":
            source = read_metadata(target).get("nasgraph.source", "")
            exported = {source: target} if source else {}
        elif target.is_dir():
            exported = {str(target.resolve()): Path(report["subjects"][0]["onnx"])}
        report["runs"] = [run_point(r, grid, exported) for r in runs]
    for s in report["subjects"]:
        s["onnx"] = str(target) if target.suffix == ".onnx" else "(temporary export)"
    return BenchResult(out, report, write_report(report, out))
