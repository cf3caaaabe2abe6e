"""int8 quantization schemes of `nasgraph export --quantize SCHEME` (ONNX Runtime's quantization tools).

Each scheme rewrites an fp32 graph into an int8 one; `exporters.quantize.quantize_checked` then
measures the test accuracy of both and refuses the export beyond the tolerance. One entry per scheme:
- `int8` (the default): dynamic quantization of the linear layers (MatMuls with constant weights):
  int8 weights with one scale per tensor, activations quantized per call (DynamicQuantizeMatMul).
- `int8-per-channel`: the same with one weight scale per output channel.
- `int8-static`: static quantization of the linear layers, activation ranges calibrated (min/max) on
  rows of the task's train split, per-channel weights, QOperator format (QLinearMatMul).
- `int8-attention`: `int8` plus the activation-by-activation MatMuls of decomposed attention (scores,
  K^T V of the linear family); the fused MultiHeadAttention of the unpadded graph stays fp32.
Every scheme leaves the broadcast pass's widening MatMuls (an operand times a ones row,
exporters.broadcast_ops) in fp32: they are exact copies, and quantizing them rounds the linear
family's normaliser to 8 bits.

Why `int8` is the default (measured 2026-12-01, ORT 1.32, 1 thread, CPU time int8/fp32 at T=512,
`benchmarks/deploy_int8.py`): the others were no faster and are kept as options; figures in
benchmarks/deploy_latency_findings.md.

Example:
    >>> quantize_with("int8-static", Path("model.onnx"), Path("model.int8.onnx"), calibration=train_split)
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from exporters.errors import ExportError

CALIBRATION_ROWS = 128  # train rows (batch 1, unpadded) for static activation ranges


@dataclass(frozen=True)
class Scheme:
    """One --quantize choice: what it does (for errors, help and metadata) and how."""

    name: str
    method: str
    run: Callable[[Path, Path, object], None]   # (src, dst, calibration split or None)
    calibrated: bool = False


@contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime.quantization logs "consider pre-processing" on every call; it changes nothing here."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _not_quantized(src: Path) -> list[str]:
    """Nodes no scheme quantizes: the widening MatMuls of exporters.broadcast_ops."""
    import onnx

    from exporters.broadcast_ops import widening_matmuls

    return widening_matmuls(onnx.load(str(src), load_external_data=False))


def _dynamic(per_channel: bool, activations: bool) -> Callable[[Path, Path, object], None]:
    def run(src: Path, dst: Path, _calibration) -> None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet():
            quantize_dynamic(src, dst, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8,
                             per_channel=per_channel, nodes_to_exclude=_not_quantized(src),
                             extra_options={"MatMulConstBOnly": not activations})
    return run


class _TrainRows:
    """onnxruntime CalibrationDataReader over the first `n` rows of a split, one unpadded row per
    call (valid input for both the padded and the unpadded graph)."""

    def __init__(self, split, input_name: str, n: int = CALIBRATION_ROWS):
        self.rows = [np.asarray(split.ids[i], dtype=np.int64)[None, :] for i in range(min(n, len(split)))]  # (1, T)
        self.input_name, self.at = input_name, 0

    def get_next(self):
        if self.at >= len(self.rows):
            return None
        self.at += 1
        return {self.input_name: self.rows[self.at - 1]}

    def rewind(self) -> None:
        self.at = 0


def _static(src: Path, dst: Path, calibration) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    with _quiet():
        quantize_static(src, dst, _TrainRows(calibration, name), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["MatMul"], per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                        nodes_to_exclude=_not_quantized(src), extra_options={"MatMulConstBOnly": True})


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("int8", "onnxruntime.quantization.quantize_dynamic: MatMul with constant weights, int8 per tensor",
           _dynamic(per_channel=False, activations=False)),
    Scheme("int8-per-channel", "onnxruntime.quantization.quantize_dynamic: MatMul with constant weights, "
           "int8 per output channel", _dynamic(per_channel=True, activations=False)),
    Scheme("int8-static", f"onnxruntime.quantization.quantize_static (QOperator): MatMul with constant weights, "
           f"int8 per output channel, uint8 activations calibrated (min/max) on {CALIBRATION_ROWS} train rows",
           _static, calibrated=True),
    Scheme("int8-attention", "onnxruntime.quantization.quantize_dynamic: every MatMul (linear layers and "
           "attention's activation products), int8 per tensor", _dynamic(per_channel=False, activations=True)),
)}


def scheme(name: str) -> Scheme:
    """The scheme called `name`; ExportError listing the valid names otherwise."""
    if name not in SCHEMES:
        raise ExportError(f"unknown quantization '{name}'; valid: {', '.join(SCHEMES)}")
    return SCHEMES[name]


def checked_scheme(name: str, calibration=None) -> Scheme:
    """The scheme called `name` (see `scheme`); ExportError when it calibrates and `calibration` (the
    task's train split) is missing or empty, naming the schemes that need none."""
    chosen = scheme(name)
    if chosen.calibrated and (calibration is None or len(calibration) == 0):
        raise ExportError(f"--quantize {name} calibrates on the task's train split, and this task has none; "
                          f"valid without one: {', '.join(n for n, s in SCHEMES.items() if not s.calibrated)}")
    return chosen


def quantize_with(name: str, src: str | Path, dst: str | Path, calibration=None) -> Path:
    """Write `src` quantized by scheme `name` to `dst` (`calibration`: a Split, for int8-static)."""
    checked_scheme(name, calibration).run(Path(src), Path(dst), calibration)
    return Path(dst)
