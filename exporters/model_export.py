"""Export a trained nasgraph model to verified ONNX files: `tokens` (B, T) int64 -> `logits` (B, C),
or (B, T, V) per-position logits for a language model (metadata `nasgraph.output` = "token").

Two graphs land together:
- `model.onnx`, the padded graph: the padding mask is computed inside (tokens != <pad>), so a caller
  feeds token ids only, padded or not;
- `model.unpadded.onnx`, the same weights with no mask at all, for batches without padding (batch 1,
  equal lengths): softmax attention then runs as com.microsoft.MultiHeadAttention on ONNX Runtime's
  flash (tiled) CPU kernel, which takes no mask. `exporters.predict` picks it for such batches; a
  token equal to <pad> makes it fail inside the graph.
Each is checked against PyTorch on real task inputs (the check split's shortest and longest examples,
padded for the padded graph, cut to equal lengths for the unpadded one) and lands only if they agree
within `spec.export.atol`; both carry what `nasgraph predict` needs (tokenizer, class names, max_len),
their derived spec and each attention layer's ORT kernel path. `contrib_ops=False`: standard ops only.

Both graphs enforce max_len themselves (exporters.guards): a longer input fails inside ONNX Runtime
with "sequence length exceeds the model's max_len" (not a broadcast error, nor silently).

`quantize="int8"` (or another exporters.quantize_schemes scheme): int8 linear layers, kept only when the
test accuracy drops by at most `max_drop` points (figures in the metadata; int8-static calibrates on train).

Example:
    >>> result = export_run("runs/train", "model.onnx")
    >>> result.report.summary()
    'parity ok (atol 0.0001, cpu): [4x9] max_abs_diff=2.1e-07; [4x101] max_abs_diff=3.3e-07'
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from exporters._files import check_target, move_all_into_place, staging_dir
from exporters.checkpoints import load_checkpoint
from exporters.decode_export import DecodeParity, decode_names, decode_skip_reason, stage_decode
from exporters.fast_ops import export_translations, fast_graph_pass
from exporters.guards import token_guards
from exporters.fused_attention import record_kernels
from exporters.parity import ParityReport, stage_verified
from exporters.quantize import QuantizeResult, quantize_checked
from exporters.runtime import read_metadata
from nasgraph import __version__
from nasgraph.errors import NasgraphError
from nasgraph.tasks.base import PAD_ID, Split

INPUT, OUTPUT = "tokens", "logits"
CHECK_BATCH = 4  # examples per parity batch
UNPADDED_SUFFIX = ".unpadded.onnx"


class LogitsFromTokens(torch.nn.Module):
    """The exported signature: tokens (B, T) int64 -> logits (B, C); the mask is derived inside
    (padded=False: no mask, every position is a real token)."""

    def __init__(self, model: torch.nn.Module, padded: bool = True):
        super().__init__()
        self.model, self.padded = model, padded

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.padded:
            return self.model(tokens)                                     # (B, C) or (B, T, V)
        return self.model(tokens, padded=False)                           # (B, C) or (B, T, V)


def unpadded_path(path: str | Path) -> Path:
    """The unpadded graph beside a padded one: `model.onnx` -> `model.unpadded.onnx`."""
    path = Path(path)
    stem = path.name[:-5] if path.name.endswith(".onnx") else path.name
    return path.with_name(stem + UNPADDED_SUFFIX)


@dataclass
class TaskInfo:
    """What a deployed model needs from its task: tokenizer, vocabulary, class names, max_len."""

    vocab: list[str]
    class_names: list[str]
    tokenizer: dict[str, Any]
    max_len: int
    check_split: Split = field(repr=False, default_factory=lambda: Split([], []))
    check_split_name: str = "val"
    output: str = "class"                    # "token": per-position logits (B, T, V) of a causal LM
    eval_split: Split = field(repr=False, default_factory=lambda: Split([], []))  # int8 accuracy
    eval_split_name: str = "test"
    calibration_split: Split = field(repr=False, default_factory=lambda: Split([], []))  # int8-static: train


@dataclass
class ExportResult:
    path: Path
    report: ParityReport
    metadata: dict[str, str]
    unpadded_path: Path | None = None
    unpadded_report: ParityReport | None = None
    quantization: QuantizeResult | None = None
    decode_paths: tuple[Path, Path] | None = None     # prefill, step graphs (exporters.decode_export)
    decode_report: DecodeParity | None = None
    decode_skipped: str = ""                          # why a language model got no decoding graphs


def load_task_info(doc, recorded: dict | None = None) -> TaskInfo:
    """Load the spec's task (for real parity inputs); `recorded` (a run's task.json) must agree with it."""
    from nasgraph import tasks

    config = tasks.parse_task(doc.spec.task)
    data = tasks.load_task(config)
    if recorded is not None:
        for key in ("vocab", "class_names", "tokenizer"):
            if key in recorded and recorded[key] != getattr(data, key):
                raise NasgraphError(f"the task's {key} today differs from the run's task.json: the model "
                                    f"was trained on other data; refusing to export a mismatched tokenizer")
    name = next((s for s in ("val", "test", "train") if len(data.splits.get(s, ())) > 0), None)
    if name is None:
        raise NasgraphError(f"task '{config.kind}' has no examples to check the export on")
    held_out = next(s for s in ("test", "val", "train") if len(data.splits.get(s, ())) > 0)
    return TaskInfo(list(data.vocab), list(data.class_names), dict(data.tokenizer), int(config.max_len),
                    data.splits[name], name, tasks.get(config.kind).output, data.splits[held_out], held_out,
                    data.splits.get("train", Split([], [])))


def _pad(rows: list[list[int]], T: int) -> torch.Tensor:
    return torch.tensor([r[:T] + [PAD_ID] * (T - len(r[:T])) for r in rows], dtype=torch.long)  # (B, T)


def parity_batches(split: Split, max_len: int, per_batch: int = CHECK_BATCH):
    """(export example, [check batches], description) from real examples.

    Checks: the `per_batch` shortest examples padded to their longest, and the longest padded to
    max_len (if those lengths coincide, the short batch is truncated by one token, as the tokenizer
    would). The export example is two middle examples (a batch > 1, so the batch axis stays dynamic).
    """
    order = sorted(range(len(split)), key=lambda i: len(split.ids[i]))
    pick = lambda idx: [list(split.ids[order[i % len(order)]])[:max_len] for i in idx]  # noqa: E731
    n = min(per_batch, len(order)) if len(order) > 1 else 2
    short, long = pick(range(n)), pick(range(len(order) - n, len(order)))
    t_short = max(len(r) for r in short)
    if t_short >= max_len:
        t_short = max_len - 1
    if t_short < 2:
        raise NasgraphError(f"max_len {max_len} leaves no second sequence length to check the export at")
    mid = pick([len(order) // 2, len(order) // 2 + 1])
    example = _pad(mid, max(2, max(len(r) for r in mid)))
    checks = [_pad(short, t_short), _pad(long, max_len)]
    described = f"{n} shortest padded to T={t_short}, {n} longest padded to T={max_len}"
    return example, checks, described


def model_metadata(doc, task: TaskInfo, source: str) -> dict[str, str]:
    """metadata_props of an exported model (all str; lists and dicts as JSON, the spec as YAML)."""
    return {"nasgraph.version": __version__,
            "nasgraph.spec": yaml.safe_dump(doc.raw, sort_keys=False, allow_unicode=True),
            "nasgraph.name": str(doc.spec.name),
            "nasgraph.vocab": json.dumps(task.vocab, ensure_ascii=False),
            "nasgraph.class_names": json.dumps(task.class_names, ensure_ascii=False),
            "nasgraph.tokenizer": json.dumps(task.tokenizer, ensure_ascii=False),
            "nasgraph.max_len": str(task.max_len),
            "nasgraph.output": task.output,
            "nasgraph.source": source}


def unpadded_batches(split: Split, max_len: int, per_batch: int = CHECK_BATCH):
    """(export example, [check batches], description) without padding: rows cut to a common length.

    Checks: the `per_batch` shortest examples cut to the shortest of them, and the longest example
    alone (batch 1, up to max_len). The export example is two middle examples (batch > 1).
    """
    order = sorted(range(len(split)), key=lambda i: len(split.ids[i]))
    pick = lambda idx: [list(split.ids[order[i % len(order)]])[:max_len] for i in idx]  # noqa: E731
    cut = lambda rows: torch.tensor([r[:min(map(len, rows))] for r in rows], dtype=torch.long)  # noqa: E731
    n = min(per_batch, len(order)) if len(order) > 1 else 2
    example, short, longest = cut(pick([len(order) // 2, len(order) // 2 + 1])), cut(pick(range(n))), cut(pick([-1]))
    if min(example.shape[1], short.shape[1]) < 2:
        raise NasgraphError("examples of fewer than 2 tokens leave no unpadded batch to check the export on")
    described = f"{n} shortest cut to T={short.shape[1]}, the longest alone at T={longest.shape[1]}"
    return example, [short, longest], described


@dataclass
class CheckInputs:
    """Token batches of an export: the traced example and the parity checks, per graph."""

    example: torch.Tensor                 # (B, T) with padding allowed
    checks: list[torch.Tensor]
    unpadded_example: torch.Tensor        # (B, T) without padding
    unpadded_checks: list[torch.Tensor]
    described: str = ""
    unpadded_described: str = ""


def export_graphs(model: torch.nn.Module, path: str | Path, inputs: CheckInputs, *, max_len: int,
                  metadata: dict[str, str], atol: float, opset: int, overwrite: bool = False,
                  contrib_ops: bool = True, quantize=None, decode: bool = False
                  ) -> tuple[Path, Path, ParityReport, ParityReport, Any, DecodeParity | None]:
    """Stage, parity-check and land the padded graph at `path` and the unpadded one beside it, with
    `decode`, the prefill and step graphs too (checked on the unpadded batches).

    `quantize(staged_padded, staged_unpadded)` may replace the staged files (int8) before they land;
    its return value is passed back. Returns (path, unpadded path, reports, quantize's result,
    decoding parity or None).
    """
    dst = check_target(path, overwrite)
    dst_u = check_target(unpadded_path(dst), overwrite)
    decode_dst = [check_target(p, overwrite) for p in decode_names(dst)] if decode else []
    common = dict(atol=atol, input_names=[INPUT], output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch", 1: "seq"}},
                  axis_max={"seq": max_len}, opset=opset, translations=export_translations(contrib_ops))
    model.eval()
    with staging_dir(dst) as stage:
        staged, staged_u = stage / dst.name, stage / dst_u.name
        report = stage_verified(
            LogitsFromTokens(model), (inputs.example,), staged, [(c,) for c in inputs.checks], shown_name=dst.name,
            graph_pass=fast_graph_pass(token_guards(INPUT, max_len=max_len)),
            metadata={**metadata, "nasgraph.padding": "padded", "nasgraph.unpadded_variant": dst_u.name,
                      "nasgraph.parity_inputs": inputs.described}, **common)
        report_u = stage_verified(
            LogitsFromTokens(model, padded=False), (inputs.unpadded_example,), staged_u,
            [(c,) for c in inputs.unpadded_checks], shown_name=dst_u.name,
            graph_pass=fast_graph_pass(token_guards(INPUT, max_len=max_len, no_padding=True, pad_id=PAD_ID)),
            metadata={**metadata, "nasgraph.padding": "none", "nasgraph.padded_variant": dst.name,
                      "nasgraph.parity_inputs": inputs.unpadded_described}, **common)
        record_kernels(staged, staged_u)
        extra = quantize(staged, staged_u) if quantize is not None else None
        report_d = stage_decode(model, stage, tuple(p.name for p in decode_dst), inputs.unpadded_example,
                                inputs.unpadded_checks, max_len=max_len, metadata=metadata, atol=atol,
                                opset=opset, contrib_ops=contrib_ops) if decode else None
        move_all_into_place([(stage / p.name, p) for p in decode_dst] + [(staged_u, dst_u), (staged, dst)], overwrite)
    return dst, dst_u, report, report_u, extra, report_d


def export_model(doc, model: torch.nn.Module, path: str | Path, task: TaskInfo, *, atol: float | None = None,
                 overwrite: bool = False, source: str = "", opset: int | None = None, contrib_ops: bool = True,
                 quantize: str | None = None, max_drop: float = 1.0, progress: bool = False,
                 checkpoint: tuple[str, Path] | None = None, decode: str = "auto") -> ExportResult:
    """Export `model` (a GraphModule of `doc`) as padded and unpadded graphs, verified on
    `task.check_split` (int8: accuracy on `task.eval_split`); see the module doc. `checkpoint`
    (description, file) of the weights is recorded as metadata. `decode`: "auto" adds the prefill
    and step graphs for a language model whose layers all decode, "always" requires them, "never"."""
    check_target(path, overwrite)
    check_target(unpadded_path(path), overwrite)
    example, checks, described = parity_batches(task.check_split, task.max_len)
    u_example, u_checks, u_described = unpadded_batches(task.check_split, task.max_len)
    inputs = CheckInputs(example, checks, u_example, u_checks, f"{task.check_split_name}: {described}",
                         f"{task.check_split_name}: {u_described}")
    quantizer = None
    if quantize:
        quantizer = lambda padded, unpadded: quantize_checked(  # noqa: E731
            [padded, unpadded], task.eval_split, task.eval_split_name, max_drop=max_drop, mode=quantize,
            calibration=task.calibration_split, progress=progress)
    metadata = model_metadata(doc, task, source)
    if checkpoint is not None:
        metadata.update({"nasgraph.checkpoint": checkpoint[0], "nasgraph.checkpoint_path": str(checkpoint[1].resolve())})
    skipped = decode_skip_reason(model, task.output, decode)
    dst, dst_u, report, report_u, quant, report_d = export_graphs(
        model, path, inputs, max_len=task.max_len, metadata=metadata,
        atol=float(atol if atol is not None else doc.spec.export.atol), opset=opset or doc.spec.export.opset,
        overwrite=overwrite, contrib_ops=contrib_ops, quantize=quantizer, decode=skipped is None)
    return ExportResult(dst, report, read_metadata(dst), dst_u, report_u, quant,
                        decode_names(dst) if report_d else None, report_d, skipped or "")


def export_run(run_dir: str | Path, path: str | Path, *, atol: float | None = None, overwrite: bool = False,
               weights: str = "best", **options: Any) -> ExportResult:
    """Export a `nasgraph train` run folder (spec.yaml, checkpoints/best.pt or last.pt, task.json):
    `weights` "best" (validation; the last one for runs without best.pt) or "last"; `options` go to
    export_model (contrib_ops, quantize, max_drop, progress)."""
    from exporters.checkpoints import select_checkpoint
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete, task_json

    check_target(path, overwrite)  # before the (possibly slow) task loading
    run_dir = Path(run_dir)
    checkpoint, described = select_checkpoint(run_dir, weights)
    doc = load_spec(run_dir / "spec.yaml")
    _, model = build_discrete(doc)
    load_checkpoint(model, checkpoint)
    recorded = task_json(run_dir)
    task = load_task_info(doc, recorded)
    return export_model(doc, model.eval(), path, task, atol=atol, overwrite=overwrite, source=str(run_dir.resolve()),
                        checkpoint=(described, checkpoint), **options)


def export_checkpoint(spec_path: str | Path, checkpoint: str | Path, path: str | Path, *,
                      overrides: Sequence[str] = (), atol: float | None = None,
                      overwrite: bool = False, **options: Any) -> ExportResult:
    """Export a spec without choice points (e.g. a derived spec) with the weights of `checkpoint`."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    check_target(path, overwrite)
    doc = load_spec(spec_path, overrides)
    _, model = build_discrete(doc)
    load_checkpoint(model, checkpoint)
    task = load_task_info(doc)
    return export_model(doc, model.eval(), path, task, atol=atol, overwrite=overwrite,
                        source=str(Path(checkpoint).resolve()), checkpoint=("the given checkpoint", Path(checkpoint)),
                        **options)
