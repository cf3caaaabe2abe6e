"""`nasgraph bench`: ONNX Runtime and PyTorch eager latency side by side over a batch x seq_len grid.

What is timed per target (an .onnx export, a spec, a train run folder) is in
`exporters.bench_subjects`. Every grid point runs warm-up calls, then timed single calls
(exporters.latency), ORT and eager alternating in rounds. Whole models are timed on the graph
`nasgraph predict` would pick for the bench's inputs (random tokens, no padding): the unpadded one
(fused mask-free attention) when it is there.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from exporters.bench_subjects import (Feeds, Subject, _spec_from_text, candidate_subjects,  # noqa: F401
                                      export_twin, model_subject, onnx_subject, subjects_for, token_feeds)
from exporters.latency import LatencyResult, env_fingerprint, ort_latency, torch_latency
from exporters.latency_table import usable_cores
from exporters.runtime import make_session, read_metadata
from nasgraph.errors import NasgraphError


MAX_CALL_TOKENS = 2 ** 26      # batch x seq_len of one timed call (e.g. 2048 x 32768)
BYTES_PER_TOKEN = 256          # a floor on what one token of a call holds: its id and a few activations


@dataclass
class Grid:
    batches: list[int]
    seq_lens: list[int]
    threads: int
    graph_opt: str = "all"
    provider: str = "cpu"
    warmup: int = 5
    repeats: int = 30
    budget_s: float | None = 5.0    # cap on the timed phase per point and backend
    rounds: int = 3                 # ORT and eager alternate this many times per point


def measure_point(subject: Subject, session_for: Callable[[Path], Any], B: int, T: int, grid: Grid) -> list[dict]:
    """ORT and eager at (B, T) in alternating rounds (a busy machine slows both alike), samples pooled.
    `session_for(onnx_file)` gives the (cached) session of the graph these feeds run on."""
    arrays = subject.feeds(B, T)
    graph, path = subject.timed_graph(arrays)
    session = session_for(path)
    graph_inputs = {i.name for i in session.get_inputs()}
    feeds = {k: v for k, v in arrays.items() if k in graph_inputs}
    inputs = tuple(torch.from_numpy(arrays[n]) for n in subject.input_names)
    rounds = max(1, min(grid.rounds, grid.repeats))
    ort, eager = [], []
    for i in range(rounds):
        per_round = max(1, grid.repeats // rounds)
        timing = dict(warmup=grid.warmup if i == 0 else min(grid.warmup, 1), repeats=per_round,
                      budget_s=grid.budget_s / rounds if grid.budget_s and per_round > 3 else None)  # cap keeps >= 3
        ort.append(ort_latency(session, feeds, **timing))
        if subject.module is not None:
            eager.append(torch_latency(subject.module, inputs, threads=grid.threads, **timing))
    common = {"subject": subject.name, "kind": subject.kind, "batch": B, "seq_len": T,
              "graph": graph}
    return [{**common, **LatencyResult.combine(r).row()} for r in (ort, eager) if r]


def run_grid(subjects: Sequence[Subject], grid: Grid, progress: bool = True) -> tuple[list[dict], list[str]]:
    """Rows for every subject x batch x seq_len; lengths a subject cannot take are listed as skipped."""
    from tqdm import tqdm

    plan, skipped = [], []
    for s in subjects:
        lens = [T for T in grid.seq_lens if s.max_len is None or T <= s.max_len]
        skipped += [f"{s.name}: T={T} > max_len {s.max_len}" for T in grid.seq_lens if T not in lens]
        if not lens and s.max_len:
            lens = [s.max_len]
            skipped.append(f"{s.name}: measured at its max_len {s.max_len} instead")
        plan += [(s, B, T) for B in grid.batches for T in lens]
    rows, sessions = [], {}

    def session_for(path: Path):
        if path not in sessions:
            sessions[path] = make_session(path, grid.provider, threads=grid.threads, graph_opt=grid.graph_opt)
        return sessions[path]

    for s, B, T in tqdm(plan, desc="bench", unit="point", disable=not progress):
        rows += measure_point(s, session_for, B, T, grid)
    return rows, skipped


def bench_spec_of(target: Path):
    """The BenchSpec that applies to a target (its own spec, the embedded one, or defaults).

    A spec or run that does not load is an error (before the benchmark); an export whose embedded
    spec does not load gets the defaults."""
    from nasgraph.spec import load_spec
    from nasgraph.spec.schema import BenchSpec

    from nasgraph.runfolder import require

    if target.is_dir():
        return load_spec(require(target, "train") / "spec.yaml").spec.bench
    if target.suffix == ".onnx":
        meta = read_metadata(target)            # a damaged file is an error here, before any work
        try:
            return _spec_from_text(meta["nasgraph.spec"]).spec.bench
        except (NasgraphError, KeyError):       # not ours to judge: the export's embedded spec
            return BenchSpec()
    return load_spec(target).spec.bench


def make_grid(target: Path, *, batches=None, seq_lens=None, threads=None, repeats=None, warmup=None,
              graph_opt: str = "all", provider: str = "cpu") -> Grid:
    spec = bench_spec_of(target)
    grid = Grid(list(batches or spec.batch_sizes), sorted(set(seq_lens or default_seq_lens(target, spec))),
                threads or spec.threads or usable_cores(), graph_opt, provider,
                spec.warmup if warmup is None else warmup, spec.repeats if repeats is None else repeats)
    if not grid.batches or not grid.seq_lens:
        empty = "batch sizes" if not grid.batches else "sequence lengths"
        raise NasgraphError(f"no {empty} to measure (bench.{'batch_sizes' if not grid.batches else 'seq_lens'} of "
                            f"{target} is empty); give some, e.g. --{'batch 1' if not grid.batches else 'seq 128'}")
    if min(grid.batches) < 1 or min(grid.seq_lens) < 1 or grid.repeats < 1 or grid.warmup < 0:
        raise NasgraphError(f"bad grid: batches {grid.batches}, seq_lens {grid.seq_lens}, repeats {grid.repeats}, "
                            f"warmup {grid.warmup} (sizes and repeats >= 1, warmup >= 0)")
    check_tokens(grid, target_max_len(target))
    return grid


def check_tokens(grid: Grid, max_len: int | None) -> None:
    """NasgraphError when the largest call (batch x seq_len, lengths past max_len are skipped anyway) is
    past MAX_CALL_TOKENS or BYTES_PER_TOKEN of the free memory: refused before anything is allocated."""
    from nasgraph.graph.resources import available_memory
    from nasgraph.textfmt import scientific

    lengths = [T for T in grid.seq_lens if max_len is None or T <= max_len] or [min(grid.seq_lens)]
    tokens = max(grid.batches) * max(lengths)
    limit = min(MAX_CALL_TOKENS, available_memory() // BYTES_PER_TOKEN)
    if tokens > limit:
        raise NasgraphError(f"--batch {max(grid.batches):,} x --seq {max(lengths):,} is {scientific(tokens)} tokens in "
                            f"one call, past the limit of {scientific(limit)} (2**26, or one token per "
                            f"{BYTES_PER_TOKEN} bytes of the free memory); use a smaller --batch or --seq")


def default_seq_lens(target: Path, spec) -> list[int]:
    """bench.seq_lens as the spec gives them; left at the default (128, 512), the lengths the model takes:
    those of the default within its max_len when two fit, else max_len / 4, max_len / 2 and max_len."""
    if "seq_lens" in spec.model_fields_set:
        return list(spec.seq_lens)
    max_len = target_max_len(target)
    fits = [T for T in spec.seq_lens if max_len is None or T <= max_len]
    if max_len is None or len(fits) >= 2:
        return fits or list(spec.seq_lens)
    return sorted({max(1, max_len // 4), max(1, max_len // 2), max_len})


def target_max_len(target: Path) -> int | None:
    """The longest sequence a bench target's model takes (its task's max_len), None when unknown."""
    from nasgraph import tasks
    from nasgraph.spec import load_spec

    try:
        if target.suffix == ".onnx":
            return int(read_metadata(target)["nasgraph.max_len"])
        doc = load_spec(target / "spec.yaml" if target.is_dir() else target)
        return int(tasks.parse_task(doc.spec.task).max_len)
    except (NasgraphError, KeyError, ValueError, TypeError, AttributeError):
        return None


def bench(target: str | Path, grid: Grid, *, candidates: bool | None = None, progress: bool = True,
          workdir: str | Path | None = None) -> dict:
    """Measure a target over the grid; returns the report dict (see exporters.bench_report)."""
    target = Path(target)
    if not target.exists():
        raise NasgraphError(f"{target}: no such .onnx file, spec or run folder")
    with tempfile.TemporaryDirectory(prefix="nasgraph-bench-") as tmp:  # exports live in workdir if given
        subjects, mode = subjects_for(target, Path(workdir or tmp), grid, candidates)
        rows, skipped = run_grid(subjects, grid, progress)
    return {"target": str(target), "mode": mode, "env": env_fingerprint(grid.provider), "settings": dict(grid.__dict__),
            "load_avg": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
            "subjects": [{"name": s.name, "kind": s.kind, "max_len": s.max_len, "note": s.note,
                          "onnx": str(s.onnx_path), **s.info}
                         for s in subjects], "rows": rows, "skipped": skipped}
