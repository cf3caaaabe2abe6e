"""int8 exports: ONNX Runtime quantization of the linear layers, kept only when accuracy holds.

The scheme (exporters.quantize_schemes: `int8`, the default, is dynamic quantization of every MatMul
with a constant weight, i.e. every nn.Linear: q/k/v/out projections, FFN, head; `int8-per-channel`,
`int8-static` calibrated on the task's train split, `int8-attention`) rewrites both staged graphs.
The accuracy of the fp32 and int8 graphs is measured with ONNX Runtime on the task's test split
(batched by length, padded), and the export is refused when the drop exceeds `max_drop` points.

Latency (measured 2026-12-01, ORT 1.32, AMX/VNNI Xeon, 1 thread, CPU time int8/fp32 at T=512,
`benchmarks/deploy_int8.py`, ListOps models d_model 64): `int8` 0.87-0.96, per channel 0.90-0.96,
static 1.00-1.10 (a QuantizeLinear + DequantizeLinear pair per MatMul and an unfused bias Add cost
more than they save), attention products too 0.91-0.96. At d_model 64 the int8 GEMMs run at ~75
GMAC/s (per-call overhead; 520 GMAC/s at 2048x1024x1024) and the ops int8 does not reach (fp32
MultiHeadAttention, LayerNormalization, Transpose, GELU) are 55-75% of the int8 graph's time, so no
scheme here reaches 0.6x. Figures and accuracy in benchmarks/deploy_latency_findings.md.

Example:
    >>> result = quantize_checked([staged, staged_unpadded], split, "test", max_drop=1.0)
    >>> result.drop_points
    0.15
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from exporters.errors import ExportError
from exporters.parity import stamp
from exporters.quantize_schemes import SCHEMES, checked_scheme, quantize_with
from exporters.runtime import make_session

MODES = tuple(SCHEMES)
EVAL_BATCH = 64


@dataclass(frozen=True)
class QuantizeResult:
    """What an int8 export measured; stored as JSON in the "nasgraph.quantization" metadata."""

    mode: str
    split: str
    examples: int
    fp32_acc: float
    int8_acc: float
    max_drop_points: float
    fp32_bytes: int
    int8_bytes: int
    method: str = SCHEMES["int8"].method

    @property
    def drop_points(self) -> float:
        return round((self.fp32_acc - self.int8_acc) * 100, 4)

    def summary(self) -> str:
        return (f"{self.mode}: {self.split} accuracy {self.fp32_acc:.4f} (fp32) -> {self.int8_acc:.4f} (int8), "
                f"drop {self.drop_points:.2f} points (limit {self.max_drop_points:g}) on {self.examples} examples; "
                f"file {self.fp32_bytes / 1e6:.2f} -> {self.int8_bytes / 1e6:.2f} MB")

    def metadata(self) -> dict[str, str]:
        return {"nasgraph.quantization": json.dumps({**asdict(self), "drop_points": self.drop_points}, sort_keys=True)}


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, activations: bool = False) -> Path:
    """Dynamic int8 quantization of `src`'s MatMuls with constant weights into `dst`; `activations`:
    also the MatMuls of two activations (scheme int8-attention)."""
    return quantize_with("int8-attention" if activations else "int8", src, dst)


def onnx_accuracy(path: str | os.PathLike, split, *, batch_size: int = EVAL_BATCH, threads: int | None = None,
                  progress: bool = False, desc: str = "accuracy") -> tuple[float, int]:
    """(accuracy, labelled count) of an exported tokens -> logits model on a task split (ORT, CPU)."""
    from tqdm import tqdm

    from nasgraph.tasks.batching import batches
    from nasgraph.training.losses import loss_and_correct

    session = make_session(path, "cpu", threads=threads)
    name = session.get_inputs()[0].name
    correct = n = 0
    n_batches = (len(split) + batch_size - 1) // batch_size
    for tokens, labels in tqdm(batches(split, batch_size, shuffle=False), total=n_batches, desc=desc,
                               unit="batch", disable=not progress, leave=False):
        logits = session.run(None, {name: tokens.numpy()})[0]                          # (B, C) or (B, T, C)
        _, c, k = loss_and_correct(torch.from_numpy(np.asarray(logits)), labels)
        correct, n = correct + c, n + k
    if n == 0:
        raise ExportError("the accuracy split has no labelled examples")
    return correct / n, n


def quantize_checked(files: Sequence[Path], split, split_name: str, *, max_drop: float, mode: str = "int8",
                     calibration=None, progress: bool = False) -> QuantizeResult:
    """Replace the staged fp32 `files` by int8 ones (scheme `mode`; `calibration`: the train split, for
    int8-static) if the first file's accuracy on `split` drops by at most `max_drop` points; else
    ExportError (the fp32 files are left as they were, nothing lands)."""
    chosen = checked_scheme(mode, calibration)     # before anything is written
    if max_drop < 0:
        raise ExportError(f"the accuracy-drop tolerance must be >= 0 points, got {max_drop}")
    if len(split) == 0:
        raise ExportError(f"the {split_name} split is empty: cannot measure the int8 accuracy change")
    quantized = [quantize_with(mode, f, f.with_name(f.stem + ".int8.onnx"), calibration) for f in files]
    fp32_acc, n = onnx_accuracy(files[0], split, progress=progress, desc=f"fp32 {split_name}")
    int8_acc, _ = onnx_accuracy(quantized[0], split, progress=progress, desc=f"int8 {split_name}")
    result = QuantizeResult(mode, split_name, n, fp32_acc, int8_acc, max_drop, files[0].stat().st_size,
                            quantized[0].stat().st_size, chosen.method)
    if result.drop_points > max_drop:
        for q in quantized:
            q.unlink(missing_ok=True)
        raise ExportError(f"int8 export refused: {result.summary()}; the drop exceeds the tolerance "
                          "(raise --max-accuracy-drop, or export fp32); nothing was written")
    for fp32, q in zip(files, quantized):
        stamp(q, result.metadata())
        os.replace(q, fp32)
    return result
