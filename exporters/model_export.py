"""Export a trained nasgraph model to one verified ONNX file: `tokens` (B, T) int64 -> `logits` (B, C),
or (B, T, V) per-position logits for a language model (metadata `nasgraph.output` = "token").

The padding mask is computed inside the graph (tokens != <pad>), so a caller feeds token ids only.
Every export is checked against PyTorch on real task inputs (the validation split's shortest and
longest examples, padded, at two sequence lengths) and lands only if they agree within
`spec.export.atol`; the file carries what `nasgraph predict` needs (tokenizer, class names, max_len)
and the derived spec it was built from.

Beyond max_len: the eager model raises SequenceTooLongError, but that Python check is not part of the
ONNX graph (the export bounds the `seq` axis by max_len instead). ONNX Runtime then fails inside the
graph (learned/sinusoidal positions: "Attempting to broadcast an axis by a dimension other than 1"),
or silently runs for a model with no position table and unbounded attention types. So the deploy side
enforces max_len itself: the tokenizer truncates, and `exporters.predict` refuses longer token arrays.

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

from exporters._files import check_target
from exporters.parity import ParityReport, export_verified
from nasgraph import __version__
from nasgraph.errors import NasgraphError
from nasgraph.tasks.base import PAD_ID, Split

INPUT, OUTPUT = "tokens", "logits"
CHECK_BATCH = 4  # examples per parity batch


class LogitsFromTokens(torch.nn.Module):
    """The exported signature: tokens (B, T) int64 -> logits (B, C); the mask is derived inside."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)                                         # (B, C) or (B, T, V)


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


@dataclass
class ExportResult:
    path: Path
    report: ParityReport
    metadata: dict[str, str]


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
    return TaskInfo(list(data.vocab), list(data.class_names), dict(data.tokenizer), int(config.max_len),
                    data.splits[name], name, tasks.get(config.kind).output)


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


def export_model(doc, model: torch.nn.Module, path: str | Path, task: TaskInfo, *, atol: float | None = None,
                 overwrite: bool = False, source: str = "", opset: int | None = None) -> ExportResult:
    """Export `model` (a GraphModule of `doc`), verified on `task.check_split`; see the module doc."""
    atol = float(atol if atol is not None else doc.spec.export.atol)
    example, checks, described = parity_batches(task.check_split, task.max_len)
    metadata = {**model_metadata(doc, task, source),
                "nasgraph.parity_inputs": f"{task.check_split_name}: {described}"}
    model.eval()
    path, report = export_verified(
        LogitsFromTokens(model), (example,), path, [(c,) for c in checks], atol=atol, overwrite=overwrite,
        input_names=[INPUT], output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch", 1: "seq"}},
        axis_max={"seq": task.max_len}, opset=opset or doc.spec.export.opset, metadata=metadata)
    return ExportResult(path, report, metadata)


def load_checkpoint(model: torch.nn.Module, checkpoint: str | Path) -> None:
    """Load a checkpoint ({"model": state_dict, ...} or a bare state_dict) into `model`, strictly.

    Only tensors and plain data are read (torch.load weights_only=True); see nasgraph.training.checkpoint.
    """
    from nasgraph.training.checkpoint import model_weights

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        raise NasgraphError(f"{checkpoint}: a folder, not a checkpoint file (a train run's weights are "
                            f"{checkpoint}/checkpoints/last.pt; or export the run folder itself)")
    if not checkpoint.is_file():
        raise NasgraphError(f"no checkpoint at {checkpoint}")
    state = model_weights(checkpoint)   # weights_only: a file that would run code is refused, not loaded
    missing, unexpected = _key_mismatch(model, state)
    if missing or unexpected:
        raise NasgraphError(f"{checkpoint} does not fit the spec's model: missing {_few(missing)}; "
                            f"unexpected {_few(unexpected)}")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:  # same keys, other shapes
        raise NasgraphError(f"{checkpoint} does not fit the spec's model: {str(err).splitlines()[-1].strip()}") from None


def _key_mismatch(model, state) -> tuple[list[str], list[str]]:
    want = set(model.state_dict())
    return sorted(want - set(state)), sorted(set(state) - want)


def _few(keys: Sequence[str]) -> str:
    return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "") if keys else "none"


def export_run(run_dir: str | Path, path: str | Path, *, atol: float | None = None,
               overwrite: bool = False) -> ExportResult:
    """Export a `nasgraph train` run folder (spec.yaml, checkpoints/last.pt, task.json)."""
    from nasgraph.training.run import load_trained, task_json

    check_target(path, overwrite)  # before the (possibly slow) task loading
    run_dir = Path(run_dir)
    doc, model = load_trained(run_dir)
    recorded = task_json(run_dir)
    task = load_task_info(doc, recorded)
    return export_model(doc, model, path, task, atol=atol, overwrite=overwrite, source=str(run_dir.resolve()))


def export_checkpoint(spec_path: str | Path, checkpoint: str | Path, path: str | Path, *,
                      overrides: Sequence[str] = (), atol: float | None = None,
                      overwrite: bool = False) -> ExportResult:
    """Export a spec without choice points (e.g. a derived spec) with the weights of `checkpoint`."""
    from nasgraph.spec import load_spec
    from nasgraph.training.run import build_discrete

    check_target(path, overwrite)
    doc = load_spec(spec_path, overrides)
    _, model = build_discrete(doc)
    load_checkpoint(model, checkpoint)
    task = load_task_info(doc)
    return export_model(doc, model.eval(), path, task, atol=atol, overwrite=overwrite,
                        source=str(Path(checkpoint).resolve()))
