"""`nasgraph bench TARGET --decode`: what generation costs: prefill latency against prompt length,
per-token decode latency, tokens per second and decoding-state memory against context length.

Subjects:
- a train run folder or a spec without choice points: the whole causal model;
- a spec with choice points: every attention candidate as a standalone causal layer (d_model, n_heads
  of the spec): the per-type decode cost the latency table and `objective: latency: {mode: decode}` use.
Latency depends on shapes, not values, so each subject is rebuilt from its spec with positions for the
longest context and a seeded random init (a run's learned position table stops at its max_len).

Per-token latency at context C: the state after C tokens (one prefill), then repeated single steps
from that same state (each call does exactly the work of the (C+1)-th token).
Backends: PyTorch eager here; ONNX Runtime through a decode driver (exporters.decode_runtime) where
one is installed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import nn

from exporters.latency import measure, torch_threads
from nasgraph import decoding
from nasgraph.errors import NasgraphError

EAGER, ORT = "torch-eager", "onnxruntime"


@dataclass
class DecodeGrid:
    prompt_lens: list[int]
    contexts: list[int]
    threads: int
    warmup: int = 3
    repeats: int = 20
    budget_s: float | None = 3.0    # cap on the timed phase per point

    @property
    def longest(self) -> int:
        return max(self.prompt_lens + [c + 1 for c in self.contexts])


@dataclass
class DecodeSubject:
    """Something that decodes: prefill(tokens (1, T)) -> state and step(token (1, 1), state, pos)."""

    name: str
    kind: str                                        # "model" | "layer"
    prefill: Callable[[int], tuple]                  # T -> state after T random tokens (timed call too)
    step: Callable[[tuple, int], object]             # (state, pos) -> one step's output
    info: dict = field(default_factory=dict)
    backend: str = EAGER
    state_bytes: Callable[[object], int] = decoding.state_bytes


def model_subject(name: str, model: nn.Module, vocab_size: int, seed: int = 0) -> DecodeSubject:
    """A causal GraphModule: prefill random tokens, step a random token."""
    decoding.attention_layers(model)                 # refuses a model that cannot decode, naming the layer
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    token = torch.randint(2, vocab_size, (1, 1), generator=gen)

    def prefill(T: int):
        return decoding.prefill(model, torch.randint(2, vocab_size, (1, T), generator=gen))[1]

    return DecodeSubject(name, "model", prefill, lambda state, pos: decoding.step(model, token, state, pos),
                         {"layers": len(decoding.attention_layers(model)),
                          "state": [(s.name, s.shape) for s in decoding.state_spec(model, 1)]})


def ort_available() -> bool:
    """Whether an ONNX Runtime decode driver (exporters.decode_runtime) and onnxruntime are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None
               for m in ("onnxruntime", "exporters.decode_runtime", "exporters.decode_export"))


def ort_model_subject(name: str, model: nn.Module, vocab_size: int, max_len: int, threads: int, workdir,
                      seed: int = 0) -> DecodeSubject:
    """The model exported as prefill/step graphs (parity-checked by the exporter), driven by ONNX Runtime."""
    from pathlib import Path

    import numpy as np

    from exporters.decode_export import export_decode
    from exporters.decode_runtime import OrtDecoder

    gen = torch.Generator().manual_seed(seed)
    checks = [torch.randint(2, vocab_size, (2, 12), generator=gen)]       # (B, T) parity batch
    path = Path(workdir) / f"{len(list(Path(workdir).glob('*.onnx')))}-model.onnx"
    export_decode(model, path, checks, max_len=max_len, overwrite=True)
    decoder = OrtDecoder(path, threads=threads)
    rng = np.random.default_rng(seed)
    token = rng.integers(2, vocab_size, (1, 1))
    return DecodeSubject(name, "model", lambda T: decoder.prefill(rng.integers(2, vocab_size, (1, T)))[1],
                         lambda state, pos: decoder.step(token, state, pos), {}, ORT, decoder.state_bytes)


def layer_subject(name: str, layer: nn.Module, d_model: int, seed: int = 0) -> DecodeSubject:
    """A standalone causal attention layer: x (1, T, d_model) -> y, step x_t (1, 1, d_model)."""
    if not layer.caps.decodable:
        raise NasgraphError(f"attention '{name}' has no decoding form: {layer.caps.decode_note}")
    layer.eval()
    gen = torch.Generator().manual_seed(seed)
    x_t = torch.randn(1, 1, d_model, generator=gen)
    return DecodeSubject(name, "layer", lambda T: layer.prefill(torch.randn(1, T, d_model, generator=gen))[1],
                         lambda state, pos: layer.step(x_t, state, pos),
                         {"state": layer.state_shapes(1)})


def measure_subject(subject: DecodeSubject, grid: DecodeGrid, on_point: Callable[[], None] | None = None
                    ) -> list[dict]:
    """Rows of one subject: kind "prefill" (length = prompt tokens) and "step" (length = context)."""
    rows = []
    with torch_threads(grid.threads) as used, torch.no_grad():
        for T in grid.prompt_lens:
            stats = measure(lambda: subject.prefill(T), warmup=min(grid.warmup, 2), repeats=grid.repeats,
                            budget_s=grid.budget_s)
            rows.append(_row(subject, "prefill", T, stats, used, tokens=T))
            if on_point:
                on_point()
        for C in grid.contexts:
            state = subject.prefill(C)
            stats = measure(lambda: subject.step(state, C), warmup=grid.warmup, repeats=grid.repeats,
                            budget_s=grid.budget_s)
            rows.append(_row(subject, "step", C, stats, used, tokens=1, state_bytes=subject.state_bytes(state)))
            if on_point:
                on_point()
    return rows


def _row(subject: DecodeSubject, kind: str, length: int, stats, threads: int, *, tokens: int, **extra) -> dict:
    return {"subject": subject.name, "kind": kind, "length": length, "backend": subject.backend, "threads": threads,
            "p50_ms": stats.p50_ms, "p90_ms": stats.p90_ms, "repeats": stats.repeats,
            "tokens_per_s": tokens * 1e3 / stats.p50_ms if stats.p50_ms > 0 else None, **extra}


def run_subjects(subjects: Sequence[DecodeSubject], grid: DecodeGrid, progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    points = len(subjects) * (len(grid.prompt_lens) + len(grid.contexts))
    rows = []
    with tqdm(total=points, desc="decode bench", disable=not progress, leave=False) as bar:
        for s in subjects:
            rows += measure_subject(s, grid, bar.update)
    return rows


def ratio(rows: list[dict], subject: str, kind: str, longer: int, shorter: int, backend: str = EAGER,
          key: str = "p50_ms") -> float | None:
    """rows[subject, kind, longer][key] / rows[subject, kind, shorter][key] (None when one is missing)."""
    got = {r["length"]: r[key] for r in rows
           if r["subject"] == subject and r["kind"] == kind and r["backend"] == backend}
    return got[longer] / got[shorter] if got.get(longer) and got.get(shorter) else None


# -- subjects of a bench target --------------------------------------------------------------------
DEFAULT_PROMPTS = [128, 512, 1024]
DEFAULT_CONTEXTS = [1024, 2048, 4096, 8192]


def decode_spec(target, longest: int):
    """The target's spec (a spec file, or a train run's snapshot) with positions for `longest` tokens."""
    from pathlib import Path

    from nasgraph.runfolder import require
    from nasgraph.spec import load_spec

    target = Path(target)
    path = require(target, "train") / "spec.yaml" if target.is_dir() else target
    max_len = load_spec(path).spec.task.get("max_len")
    return load_spec(path, [f"task.max_len={max(longest, int(max_len or 0))}"])


def check_length(graph, longest: int) -> None:
    """NasgraphError when one forward pass at the longest prompt / context is past nasgraph's limits
    (docs/spec.md, Limits) or its weights (a position table grows with it) past the free memory."""
    from nasgraph.graph.resources import Unsizable, available_memory, estimate
    from nasgraph.spec.limits import MAX_FORWARD_FLOPS
    from nasgraph.textfmt import human, scientific

    try:
        est = estimate(graph)
    except Unsizable as err:
        raise NasgraphError(f"--seq / --contexts up to {longest:,} tokens: the model is too large to be sized at "
                            f"that length ({err}); use shorter lengths") from None
    if est.flops > MAX_FORWARD_FLOPS or 4 * est.params > available_memory():
        raise NasgraphError(f"--seq / --contexts up to {longest:,} tokens: one forward pass at that length costs about "
                            f"{scientific(est.flops)} FLOPs with {human(est.params)} parameters, past nasgraph's limit "
                            f"of {scientific(MAX_FORWARD_FLOPS)} FLOPs or the free memory; use shorter lengths")


def decode_subjects(target, grid: DecodeGrid, workdir=None) -> tuple[list[DecodeSubject], list[str]]:
    """Subjects of a target (see the module doc) and notes on what was left out; a whole model also in
    ONNX Runtime when a decode driver is installed and `workdir` is given (for its exported graphs)."""
    from nasgraph import attention
    from nasgraph.graph import compile_spec
    from nasgraph.model import GraphModule
    from nasgraph.ops.attention import candidate_label, normalize_candidate

    doc = decode_spec(target, grid.longest)
    graph = compile_spec(doc, force=True)                       # a bench does not train: no memory check
    check_length(graph, grid.longest)
    ctx = graph.graph["ctx"]
    points = [d for _, d in graph.nodes(data=True) if d.get("choice")]
    torch.manual_seed(0)
    if not points:
        if ctx.get("task_output") != "token":
            raise NasgraphError(f"{target}: a classifier does not generate; --decode needs a causal language "
                                f"model (an lm or mqar task)")
        model, name = GraphModule(graph).eval(), str(doc.spec.name)
        subjects, notes = [model_subject(name, model, ctx["vocab_size"])], []
        if workdir is not None and ort_available():
            try:
                subjects.insert(0, ort_model_subject(name, model, ctx["vocab_size"], ctx["max_len"], grid.threads,
                                                     workdir))
            except Exception as err:  # an export that fails its parity check: eager only, say why
                notes.append(f"{name}: no ONNX Runtime column, the decode export failed: {err}")
        elif workdir is not None:
            notes.append("no ONNX Runtime column: no decode driver (exporters.decode_runtime) installed")
        return subjects, notes
    subjects, notes, seen = [], [], set()
    for d in points:
        if not d["params"].get("causal"):
            raise NasgraphError(f"{target}: the choice points are not causal; --decode needs a causal language "
                                f"model (an lm or mqar task)")
        for cand in d["params"]["candidates"]:
            name, options = normalize_candidate(cand)
            label = candidate_label(name, options)
            if label in seen:
                continue
            seen.add(label)
            cls = attention.get(name)
            if not (cls.caps.causal and cls.caps.decodable):
                notes.append(f"{label}: left out, no decoding form ({cls.caps.decode_note or 'no causal form'})")
                continue
            layer = attention.build(name, ctx["d_model"], ctx["n_heads"], True,
                                    grid.longest if cls.caps.bounded else None, **options)
            subjects.append(layer_subject(label, layer, ctx["d_model"]))
    return subjects, notes


def bench_decode(target, grid: DecodeGrid, *, progress: bool = True) -> dict:
    """The report of a decode bench (see the module doc): settings, rows, ratios, notes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="nasgraph-decode-bench-") as workdir:
        subjects, notes = decode_subjects(target, grid, workdir)
        if not subjects:
            raise NasgraphError(f"{target}: nothing decodes (" + "; ".join(notes) + ")")
        rows = run_subjects(subjects, grid, progress)
    longest, shortest = max(grid.contexts), min(grid.contexts)
    ratios = [(s.name, s.backend, r) for s in subjects if longest != shortest
              and (r := ratio(rows, s.name, "step", longest, shortest, s.backend)) is not None]
    backends = list(dict.fromkeys(s.backend for s in subjects))
    return {"target": str(target), "mode": "decode", "backends": backends, "rows": rows, "ratios": ratios,
            "notes": notes, "subjects": [{"name": s.name, "kind": s.kind, **s.info} for s in subjects],
            "weights": "seeded random init (latency and state size depend on shapes, not values)",
            "settings": {"threads": grid.threads, "repeats": grid.repeats, "warmup": grid.warmup,
                         "prompt_lens": grid.prompt_lens, "contexts": grid.contexts}}
