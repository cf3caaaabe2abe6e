"""What `nasgraph bench` times: Subjects (an ONNX file, its eager twin, input makers) per target.

- an exported model (.onnx): the ONNX file as shipped; its PyTorch twin is rebuilt from the embedded
  spec with the source run's weights when that run still exists (else a seeded random init: same
  architecture and shapes, which is what latency depends on);
- a spec with choice points: every attention candidate as a standalone layer (d_model, n_heads and
  causality of the spec; bounded types sized to the grid's longest sequence);
- a spec without choice points, or a train run folder: the whole model, exported like `nasgraph
  export` (padded and unpadded graphs, parity-checked: `export_twin`).
Each subject records which kernel path each attention layer of its graphs takes
(exporters.fused_attention).
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

from exporters.latency_table import attention_module, export_layer, is_bounded, layer_feeds
from exporters.runtime import read_metadata
from nasgraph.errors import NasgraphError
from nasgraph.tasks.base import PAD_ID

if TYPE_CHECKING:
    from exporters.bench import Grid

Feeds = Callable[[int, int], dict[str, np.ndarray]]


class EagerLogits(nn.Module):
    """The eager twin of an exported pair, timed against it: tokens (B, T) -> logits. A batch without
    padding runs the mask-free forward (what the unpadded graph computes, and the graph `nasgraph
    predict` picks for it), a padded batch the masked one: ORT and eager do the same work."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens, padded=bool((tokens == PAD_ID).any()))  # (B, C) or (B, T, V)


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
    from exporters.model_export import unpadded_path
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
        module = EagerLogits(model.eval())
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
    from exporters.model_export import unpadded_path

    path = export_twin(doc, model.eval(), workdir / f"{doc.spec.name}.onnx")
    return _with_kernels(Subject(str(doc.spec.name), "model", path, EagerLogits(model),
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


def subjects_for(target: Path, workdir: Path, grid: "Grid", candidates: bool | None = None) -> tuple[list[Subject], str]:
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
