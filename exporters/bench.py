"""`nasgraph bench`: ONNX Runtime and PyTorch eager latency side by side over a batch x seq_len grid.

Targets:
- an exported model (.onnx): the ONNX file as shipped; its PyTorch twin is rebuilt from the embedded
  spec with the source run's weights when that run still exists (else a seeded random init: same
  architecture and shapes, which is what latency depends on);
- a spec with choice points: every attention candidate as a standalone layer (d_model, n_heads and
  causality of the spec; bounded types sized to the grid's longest sequence);
- a spec without choice points, or a train run folder: the whole model.
Every grid point runs warm-up calls, then timed single calls (exporters.latency), ORT then eager.
Whole models are timed on the graph `nasgraph predict` would pick for the bench's inputs (random
tokens, no padding): the unpadded one (fused mask-free attention) when it is there. Each subject
records which kernel path each attention layer of that graph takes (exporters.fused_attention).
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from exporters.latency import LatencyResult, env_fingerprint, ort_latency, torch_latency
from exporters.latency_table import attention_module, export_layer, is_bounded, layer_feeds, usable_cores
from exporters.runtime import make_session, read_metadata
from nasgraph.errors import NasgraphError
from nasgraph.tasks.base import PAD_ID

Feeds = Callable[[int, int], dict[str, np.ndarray]]


@dataclass
class Subject:
    """One thing to time: an ONNX file, its eager twin, and how to make inputs of shape (B, T)."""

    name: str
    kind: str                       # "model" or "layer"
    onnx_path: Path
    module: nn.Module | None        # None: no eager twin (reason in `note`)
    feeds: Feeds
    input_names: list[str]
    max_len: int | None = None      # longest sequence the subject accepts
    note: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    unpadded_path: Path | None = None  # the mask-free graph, timed instead when the feeds have no padding

    def timed_graph(self, feeds: dict[str, np.ndarray]) -> tuple[str, Path]:
        """("unpadded" | "padded", file) for these feeds, as `nasgraph predict` would choose."""
        tokens = feeds.get("tokens")
        if self.unpadded_path is not None and tokens is not None and not (tokens == PAD_ID).any():
            return "unpadded", self.unpadded_path
        return "padded", self.onnx_path


def _with_kernels(subject: Subject) -> Subject:
    """Record the attention kernel path per layer of each graph the subject may time."""
    from exporters.fused_attention import attention_kernels

    subject.info["attention_kernels"] = {"padded": attention_kernels(subject.onnx_path)}
    if subject.unpadded_path is not None:
        subject.info["attention_kernels"]["unpadded"] = attention_kernels(subject.unpadded_path)
    return subject


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


def token_feeds(vocab_size: int) -> Feeds:
    gen = torch.Generator().manual_seed(0)
    return lambda B, T: {"tokens": torch.randint(2, vocab_size, (B, T), generator=gen).numpy()}  # (B, T)


def _spec_from_text(text: str):
    from nasgraph.spec import load_spec

    with tempfile.TemporaryDirectory(prefix="nasgraph-bench-") as tmp:
        path = Path(tmp) / "spec.yaml"
        path.write_text(text, encoding="utf-8")
        return load_spec(path)


def onnx_subject(path: str | Path) -> Subject:
    """An exported model and its eager twin (see the module doc)."""
    from exporters.checkpoints import load_checkpoint
    from exporters.model_export import LogitsFromTokens, unpadded_path
    from exporters.predict import parse_metadata
    from nasgraph.training.run import build_discrete

    meta = read_metadata(path)
    if "nasgraph.spec" not in meta:
        raise NasgraphError(f"{path} is not a `nasgraph export` model (no nasgraph.spec metadata)")
    _, max_len, _ = parse_metadata(path, meta)
    try:
        vocab = json.loads(meta.get("nasgraph.vocab", ""))
    except ValueError:
        vocab = None
    if not isinstance(vocab, list) or len(vocab) < 3:
        raise NasgraphError(f"{path}: bad metadata nasgraph.vocab: expected a JSON list of tokens")
    source, module, weights = Path(meta.get("nasgraph.source") or "/nonexistent"), None, ""
    # the exported weights: the source checkpoint file, or the run's checkpoint the export recorded
    checkpoint = source if source.is_file() else Path(meta.get("nasgraph.checkpoint_path") or "/nonexistent")
    try:
        torch.manual_seed(0)
        _, model = build_discrete(_spec_from_text(meta["nasgraph.spec"]))
        if checkpoint.is_file():
            load_checkpoint(model, checkpoint)
            weights = f"the source run {source}" if source.is_dir() else f"the source checkpoint {checkpoint}"
        else:
            weights = "seeded random init (the source run is not here; latency does not depend on values)"
        module = LogitsFromTokens(model.eval())
    except NasgraphError as err:
        weights = f"no eager twin: {err}"
    sibling = Path(path).with_name(meta.get("nasgraph.unpadded_variant", unpadded_path(path).name))
    return _with_kernels(Subject(
        meta.get("nasgraph.name", Path(path).stem), "model", Path(path), module, token_feeds(len(vocab)), ["tokens"],
        max_len, weights, {"torch_weights": weights},
        sibling if meta.get("nasgraph.padding") != "none" and sibling.is_file() else None))


def export_twin(doc, model: nn.Module, path: Path, contrib_ops: bool = True) -> Path:
    """Export a model (random or trained weights) for timing, padded and unpadded graphs, verified on
    random tokens at two lengths (the padded checks with padded rows)."""
    from exporters.model_export import CheckInputs, export_graphs, unpadded_path

    ctx = model.ctx
    gen = torch.Generator().manual_seed(0)
    lens = sorted({min(ctx.max_len, 8), ctx.max_len})
    tokens = lambda B, T: torch.randint(2, ctx.vocab_size, (B, T), generator=gen)  # noqa: E731  (B, T)

    def padded(B: int, T: int) -> torch.Tensor:
        t = tokens(B, T)
        t[1:, max(1, T // 2):] = PAD_ID                                   # rows after the first: half padding
        return t

    example = tokens(2, max(2, lens[-1]))                                  # max_len: no size traced as 1
    inputs = CheckInputs(example, [padded(3, T) for T in lens], example, [tokens(1, T) for T in lens],
                         "random tokens, rows half padded", "random tokens, batch 1")
    export_graphs(model, path, inputs, max_len=ctx.max_len, metadata={"nasgraph.name": str(doc.spec.name)},
                  atol=doc.spec.export.atol, opset=doc.spec.export.opset, overwrite=True, contrib_ops=contrib_ops)
    assert unpadded_path(path).is_file()
    return path


def model_subject(doc, model: nn.Module, workdir: Path, weights: str) -> Subject:
    from exporters.model_export import LogitsFromTokens, unpadded_path

    path = export_twin(doc, model.eval(), workdir / f"{doc.spec.name}.onnx")
    return _with_kernels(Subject(str(doc.spec.name), "model", path, LogitsFromTokens(model),
                                 token_feeds(model.ctx.vocab_size), ["tokens"], model.ctx.max_len, weights,
                                 {"torch_weights": weights}, unpadded_path(path)))


def candidate_subjects(doc, workdir: Path, longest: int) -> list[Subject]:
    """Every distinct attention candidate of the spec as a standalone layer (bounded: max_len = longest)."""
    from nasgraph.graph import compile_spec
    from nasgraph.ops.attention import candidate_label, normalize_candidate

    graph = compile_spec(doc)
    ctx = graph.graph["ctx"]
    seen: dict[str, Subject] = {}
    for _, d in graph.nodes(data=True):
        if d.get("op") != "attention":
            continue
        params = d["params"]
        causal = params.get("causal", False)
        for cand in params.get("candidates") or params.get("heads") or []:
            label = candidate_label(*normalize_candidate(cand)) + (" causal" if causal else "")
            if label in seen:
                continue
            bound = longest if is_bounded(cand) else None
            torch.manual_seed(0)
            module = attention_module(cand, ctx["d_model"], ctx["n_heads"], causal=causal, max_len=bound)
            path = export_layer(module, workdir / f"{len(seen):02d}.onnx", ctx["d_model"], bound)
            seen[label] = _with_kernels(Subject(label, "layer", path, module, layer_feeds(ctx["d_model"]), ["x", "mask"],
                                                bound, info={"d_model": ctx["d_model"], "n_heads": ctx["n_heads"],
                                                             "causal": causal}))
    return list(seen.values())


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


def subjects_for(target: Path, workdir: Path, grid: Grid, candidates: bool | None = None) -> tuple[list[Subject], str]:
    """The subjects of a bench target (.onnx, spec YAML, or train run folder) and the mode used."""
    from nasgraph.graph import compile_spec
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete, load_trained

    if target.is_dir():
        doc, model = load_trained(target)
        return [model_subject(doc, model, workdir, f"the run {target}")], "model"
    if target.suffix == ".onnx":
        return [onnx_subject(target)], "model"
    doc = load_spec(target)
    has_choice = any(d.get("choice") for _, d in compile_spec(doc).nodes(data=True))
    if candidates or (candidates is None and has_choice):
        return candidate_subjects(doc, workdir, max(grid.seq_lens)), "candidates"
    torch.manual_seed(0)
    _, model = build_discrete(doc)
    return [model_subject(doc, model, workdir, "seeded random init")], "model"


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
    return grid


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
