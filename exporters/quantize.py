"""int8 exports: ONNX Runtime dynamic quantization of the linear layers, kept only when accuracy holds.

`quantize_dynamic` turns each MatMul with a constant weight (every nn.Linear: q/k/v/out projections,
FFN, head) into MatMulInteger with int8 weights and activations quantized per call; attention's own
products (scores, fused MultiHeadAttention) stay fp32. The accuracy of the fp32 and int8 graphs is
measured with ONNX Runtime on the task's test split (batched by length, padded), and the export is
refused when the drop exceeds `max_drop` points.

Why dynamic, per tensor (measured 2026-11-30, ListOps softmax model d_model 64, 1 thread, CPU time
int8/fp32 at T=512; test accuracy change on 2000 examples): per tensor 0.85 (+0.05 points), per
channel 0.92 (-0.30), FFN layers only 0.90 (-0.05), static QDQ calibrated on the validation split
1.07 (+0.20: the QuantizeLinear/DequantizeLinear pairs cost more than they save), static QOperator
0.95 (+0.20). At d_model 64 the linear layers are ~20% of ORT's time (MultiHeadAttention, fp32
only, ~60%), which bounds any int8 scheme of them above 0.8x.

Activation-by-activation MatMuls too (`activations=True`: DynamicQuantizeLinear on both inputs,
MatMulInteger; measured 2026-11-30, ListOps models d_model 64 trained 1200 steps, 2000 test
examples): accuracy holds (softmax 0.4600 -> 0.4605, linear 0.4365 -> 0.4390, local 0.4035 ->
0.4030), but it is no faster at T=512 (CPU time int8/fp32 0.81-1.24 against 0.80-1.04 for weights
only; the attention products are small, 4 heads x 16, and each adds two quantization passes), so
the export keeps weights only. The unpadded graph's softmax runs inside MultiHeadAttention, which
no scheme quantizes.

Example:
    >>> result = quantize_checked([staged, staged_unpadded], split, "test", max_drop=1.0)
    >>> result.drop_points
    0.15
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from exporters.errors import ExportError
from exporters.parity import stamp
from exporters.runtime import make_session

MODES = ("int8",)
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
    method: str = "onnxruntime.quantization.quantize_dynamic: MatMul with constant weights, int8 per tensor"

    @property
    def drop_points(self) -> float:
        return round((self.fp32_acc - self.int8_acc) * 100, 4)

    def summary(self) -> str:
        return (f"int8: {self.split} accuracy {self.fp32_acc:.4f} (fp32) -> {self.int8_acc:.4f} (int8), "
                f"drop {self.drop_points:.2f} points (limit {self.max_drop_points:g}) on {self.examples} examples; "
                f"file {self.fp32_bytes / 1e6:.2f} -> {self.int8_bytes / 1e6:.2f} MB")

    def metadata(self) -> dict[str, str]:
        return {"nasgraph.quantization": json.dumps({**asdict(self), "drop_points": self.drop_points}, sort_keys=True)}


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, activations: bool = False) -> Path:
    """Dynamic int8 quantization of `src`'s MatMuls with constant weights into `dst`; `activations`:
    also the MatMuls of two activations (both inputs get a DynamicQuantizeLinear per call)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # "consider pre-processing" is logged on every call; it changes nothing here
    try:
        quantize_dynamic(Path(src), Path(dst), op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                         extra_options={"MatMulConstBOnly": not activations})
    finally:
        root.setLevel(level)
    return Path(dst)


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
                     progress: bool = False) -> QuantizeResult:
    """Replace the staged fp32 `files` by int8 ones if the first file's accuracy on `split` drops by at
    most `max_drop` points; else ExportError (the fp32 files are left as they were, nothing lands)."""
    if mode not in MODES:
        raise ExportError(f"unknown quantization '{mode}'; valid: {', '.join(MODES)}")
    if max_drop < 0:
        raise ExportError(f"the accuracy-drop tolerance must be >= 0 points, got {max_drop}")
    if len(split) == 0:
        raise ExportError(f"the {split_name} split is empty: cannot measure the int8 accuracy change")
    quantized = [quantize_int8(f, f.with_name(f.stem + ".int8.onnx")) for f in files]
    fp32_acc, n = onnx_accuracy(files[0], split, progress=progress, desc=f"fp32 {split_name}")
    int8_acc, _ = onnx_accuracy(quantized[0], split, progress=progress, desc=f"int8 {split_name}")
    result = QuantizeResult(mode, split_name, n, fp32_acc, int8_acc, max_drop, files[0].stat().st_size,
                            quantized[0].stat().st_size)
    if result.drop_points > max_drop:
        for q in quantized:
            q.unlink(missing_ok=True)
        raise ExportError(f"int8 export refused: {result.summary()}; the drop exceeds the tolerance "
                          "(raise --max-accuracy-drop, or export fp32); nothing was written")
    for fp32, q in zip(files, quantized):
        stamp(q, result.metadata())
        os.replace(q, fp32)
    return result
