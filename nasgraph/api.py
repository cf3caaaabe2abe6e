"""The Python API: each step of the chain as a function that takes paths (or a loaded spec) and returns
a typed result. The `nasgraph` command is a thin layer over these functions; see docs/python_api.md.

    import nasgraph.api as ng

    ng.compile("spec.yaml").summary.space_size                    # search-space size, FLOPs, params
    found = ng.search("spec.yaml", "runs/search", overrides=["train.steps=200"])
    derived = ng.derive(found.run, "runs/derived.yaml")
    trained = ng.train(derived.path, "runs/train")
    ng.evaluate(trained.run).acc
    model = ng.export(trained.run, "runs/model.onnx")
    ng.bench(model.path, "runs/bench").report["rows"]

Every result has `to_json()`: the same keys as the run folder's JSON file (search.json,
result.json, report.json) and what `--json` prints. Bad input raises NasgraphError subclasses
(SpecError is located: file, line, key).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

from nasgraph.errors import NasgraphError
from nasgraph.spec import SpecDocument, load_spec

SpecLike = Union[str, Path, SpecDocument]


def load(spec: SpecLike, overrides: Sequence[str] = (), force: bool = False) -> SpecDocument:
    """A spec file (with `key.path=value` overrides) loaded and checked, or an already loaded spec.

    `force`: build past the resource estimate's limits (docs/spec.md, Limits)."""
    if isinstance(spec, SpecDocument):
        if overrides:
            raise NasgraphError(f"{spec.path}: overrides apply when a spec file is loaded; this spec is "
                                f"already loaded (pass its path, or load_spec(path, overrides))")
        doc = spec
    else:
        doc = load_spec(spec, list(overrides))
    doc.force = doc.force or force
    return doc


@dataclass(frozen=True)
class CompileResult:
    doc: SpecDocument
    graph: Any            # networkx.DiGraph
    summary: Any          # nasgraph.graph.summary.Summary
    written: list[Path] = field(default_factory=list)
    elastic: dict | None = None   # elastic dimensions: the space, its size, the smallest and largest sub-network

    def to_json(self) -> dict:
        return {**self.summary.to_json(), **({"elastic": self.elastic} if self.elastic else {})}


def compile(spec: SpecLike, overrides: Sequence[str] = (), out: str | Path | None = None,
            overwrite: bool = False, force: bool = False) -> CompileResult:
    """Validate a spec and build its op graph; with `out`, write graph.json/.dot and summary.json there
    (a new or empty folder, or an earlier compile output with `overwrite`). `force`: build past the
    resource estimate's limits (docs/spec.md, Limits)."""
    from nasgraph.graph import compile_spec
    from nasgraph.graph.io import write_artifacts
    from nasgraph.graph.elastic import summarize_elastic
    from nasgraph.graph.summary import summarize
    from nasgraph.runfolder import claim

    doc = load(spec, overrides, force)
    graph = compile_spec(doc)
    summary = summarize(graph)
    result = CompileResult(doc, graph, summary, elastic=summarize_elastic(doc, graph, summary))
    if out is not None:
        claim(out, "compile", replace=overwrite)   # never the user's own folder or another kind of run
        result.written.extend(write_artifacts(graph, Path(out)) + [Path(out) / "summary.json"])
        result.written[-1].write_text(json.dumps(result.to_json(), indent=1))
    return result


@dataclass(frozen=True)
class SearchResult:
    run: Path
    outcome: dict         # search.json
    report: Path

    @property
    def derived(self) -> Path:
        return self.run / "derived.yaml"

    @property
    def recommendation(self) -> dict:
        """recommendation.json: the pick, runner-up, confidence and warnings."""
        return json.loads((self.run / "recommendation.json").read_text())

    @property
    def labels(self) -> dict[str, list[str]]:
        """Choice point -> picked candidate per group (the vote over seeds)."""
        return self.outcome["labels"]

    def to_json(self) -> dict:
        return self.outcome


def search(spec: SpecLike, out: str | Path, *, overrides: Sequence[str] = (), resume: bool = False,
           progress: bool = True, force: bool = False, device: str | None = None) -> SearchResult:
    """Search the spec's choice points into run folder `out` (search.json, derived.yaml, report.md) on
    `device` (auto | cpu | cuda | cuda:N; default train.device). Under torchrun: data-parallel, rank 0 writes."""
    from nasgraph.provenance import mark_derived
    from nasgraph.report import write_search_report
    from nasgraph.search.run import run_search

    doc = load(spec, overrides, force)
    outcome = run_search(doc, out, resume=resume, progress=progress, device=device)
    mark_derived(Path(out), doc, overrides, outcome["labels"])
    if outcome.get("elastic"):
        from nasgraph.elastic_report import write_elastic_report
        return SearchResult(Path(out), outcome, write_elastic_report(out))
    return SearchResult(Path(out), outcome, write_search_report(out))


@dataclass(frozen=True)
class DeriveResult:
    path: Path
    run: Path
    choice: dict[str, list[int]]
    seed: int | None      # None: the vote over seeds

    def to_json(self) -> dict:
        return {"path": str(self.path), "run": str(self.run), "seed": self.seed, "choice": self.choice}


def derive(run: str | Path, output: str | Path, *, seed: int | None = None, overwrite: bool = False,
           point: int | None = None) -> DeriveResult:
    """Write the architecture a search run picked (or one seed's pick; or, of an elastic search, the
    Pareto front's point `point`) as a spec that compiles on its own."""
    from nasgraph.graph import compile_spec
    from nasgraph.runfolder import require
    from nasgraph.provenance import header
    from nasgraph.search.derive import check_choice, derive_spec
    from nasgraph.spec import dump_spec
    from nasgraph.training.rundir import read_json

    run, output = Path(run), Path(output)
    if output.is_dir():
        raise NasgraphError(f"{output} is a folder; give a file name for -o (nothing was written)")
    result = run / "search.json"
    if not result.exists():
        raise NasgraphError(f"{run}: not a finished search run (no search.json)")
    require(run, "search")
    outcome = read_json(result)
    elastic = isinstance(outcome, dict) and bool(outcome.get("elastic"))
    if elastic or point is not None:
        return _derive_elastic(run, output, outcome if elastic else {}, point, overwrite)
    try:
        choice, by_seed = outcome["choice"], {r["seed"]: r["choice"] for r in outcome["per_seed"]}
    except (KeyError, TypeError):
        raise NasgraphError(f"{result}: damaged search result (no choice / per_seed choices)") from None
    if seed is not None:
        if seed not in by_seed:
            raise NasgraphError(f"--seed {seed}: the run has seeds {', '.join(map(str, by_seed))}")
        choice = by_seed[seed]
    doc = load_spec(run / "spec.yaml")
    graph = compile_spec(doc)
    check_choice(choice, graph, result)
    labels = {n: [graph.nodes[n]["candidates"][i] for i in picks] for n, picks in choice.items()}
    dump_spec(derive_spec(doc.raw, graph, choice), output, overwrite=overwrite, header=header(run, seed, labels))
    try:
        compile_spec(load_spec(output))  # the derived spec must compile on its own
    except NasgraphError:
        output.unlink()
        raise
    return DeriveResult(output, run, choice, seed)


def _derive_elastic(run: Path, output: Path, outcome: dict, point: int | None, overwrite: bool) -> DeriveResult:
    """A sub-network of an elastic search: the pick, or front point `point`."""
    from nasgraph.graph import compile_spec
    from nasgraph.graph.subnet import SubNet
    from nasgraph.provenance import header
    from nasgraph.search.elastic_run import derive_subnet
    from nasgraph.spec import dump_spec

    if not outcome.get("elastic"):
        raise NasgraphError(f"--point {point}: {run} is not an elastic search (only those have a Pareto front of "
                            f"sub-networks); drop --point")
    front = outcome.get("front") or []
    if point is not None and not 0 <= point < len(front):
        raise NasgraphError(f"--point {point}: the front of {run} has points 0..{len(front) - 1}")
    try:
        sub = SubNet.from_json(front[point]["subnet"] if point is not None else outcome["subnet"])
    except (KeyError, TypeError, ValueError):
        raise NasgraphError(f"{run / 'search.json'}: damaged elastic search result (no sub-network)") from None
    doc = load_spec(run / "spec.yaml")
    graph = compile_spec(doc)
    dump_spec(derive_subnet(doc.raw, graph, sub), output, overwrite=overwrite,
              header=header(run, None, {"subnet": [sub.label(outcome.get("candidates"))]}))
    try:
        compile_spec(load_spec(output))  # the derived spec must compile on its own
    except NasgraphError:
        output.unlink()
        raise
    return DeriveResult(output, run, outcome["choice"] if point is None else {"point": [point]}, None)


@dataclass(frozen=True)
class TrainResult:
    name: str             # the spec's name
    run: Path
    result: dict          # result.json
    report: Path

    @property
    def checkpoint(self) -> Path:
        return self.run / "checkpoints" / "last.pt"

    def to_json(self) -> dict:
        return self.result


def train(spec: SpecLike, out: str | Path, *, overrides: Sequence[str] = (), resume: bool = False,
          extend: bool = False, progress: bool = True, force: bool = False, device: str | None = None) -> TrainResult:
    """Train a spec without choice points (e.g. a derived one) from scratch into run folder `out`.

    resume: continue the run in `out` (the spec must equal its snapshot; the device may change); with
    extend, train.steps may grow (the schedule is re-planned over the new total). device: as `search`."""
    from nasgraph.report import write_train_report
    from nasgraph.training.run import run_train

    doc = load(spec, overrides, force)
    result = run_train(doc, out, resume=resume, extend=extend, progress=progress, device=device)
    return TrainResult(doc.spec.name, Path(out), result, write_train_report(out))


@dataclass(frozen=True)
class EvalResult:
    run: Path
    split: str
    acc: float            # per labelled example, or per labelled position (lm, mqar)
    loss: float
    n: int
    metrics: dict = field(default_factory=dict)   # all of the task's metrics (bits_per_byte, ...)

    def to_json(self) -> dict:
        return {**self.metrics, "run": str(self.run), "split": self.split, "acc": self.acc, "loss": self.loss,
                "n": self.n}


def evaluate(run: str | Path, split: str = "test", device: str | None = None) -> EvalResult:
    """Accuracy, loss and the task's metrics of a train run's last checkpoint on a split, on `device`."""
    from nasgraph.training.run import run_eval

    r = run_eval(run, split, device)
    return EvalResult(Path(run), split, r["acc"], r["loss"], r["n"], dict(r))


def export(source: str | Path, output: str | Path, *, checkpoint: str | Path | None = None,
           overrides: Sequence[str] = (), atol: float | None = None, overwrite: bool = False,
           weights: str = "best", quantize: str | None = None, max_drop: float = 1.0, contrib_ops: bool = True,
           progress: bool = False, decode: str = "auto"):
    """A train run folder (or a spec plus `checkpoint`) to parity-checked ONNX models: the padded
    graph at `output` and the unpadded one beside it (exporters.model_export).

    weights: for a run folder, "best" (validation) or "last" checkpoint. quantize: an int8 scheme of
    exporters.quantize_schemes.SCHEMES ("int8": dynamic, the linear layers), refused when the test
    accuracy drops by more than `max_drop` points.
    contrib_ops=False: standard ONNX ops only. decode: "auto" adds the prefill/step graphs of a
    causal language model whose layers all decode (docs/decode_format.md), "always" requires them,
    "never". Returns exporters.model_export.ExportResult (path, parity report, metadata, unpadded
    path and report, quantization figures, decoding graphs and their parity).
    """
    from exporters.model_export import export_checkpoint, export_run

    options = dict(quantize=quantize, max_drop=max_drop, contrib_ops=contrib_ops, progress=progress, decode=decode)
    source = Path(source)
    if source.is_dir():
        if checkpoint or overrides:
            raise NasgraphError(f"{source} is a run folder: it brings its own spec and checkpoint "
                                "(--checkpoint and --set are for a spec source)")
        return export_run(source, output, atol=atol, overwrite=overwrite, weights=weights, **options)
    if source.is_file():
        if checkpoint is None:
            raise NasgraphError(f"{source} is a spec: pass --checkpoint with its trained weights "
                                "(or give a train run folder instead)")
        return export_checkpoint(source, checkpoint, output, overrides=list(overrides), atol=atol, overwrite=overwrite,
                                 **options)
    raise NasgraphError(f"{source}: no such run folder or spec file")


# the benchmarks live beside the API (nasgraph/api_bench.py) to keep each file short
from nasgraph.api_bench import BenchResult, bench, bench_decode  # noqa: E402,F401
