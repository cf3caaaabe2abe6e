"""PyTorch vs ONNX Runtime parity: per-input max abs diff, and exports that only land when they match.

Example:
    >>> report = check_parity(attn, "attn.onnx", [(x16, m16), (x48, m48)], atol=1e-4)
    >>> report.ok, report.max_abs_diff
    (True, 2.4e-07)
    >>> path, report = export_verified(attn, (x, m), "attn.onnx", [(x16, m16), (x48, m48)],
    ...                                input_names=["x", "mask"], dynamic_axes=batch_seq_axes("x", "mask"))
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from exporters._files import check_target, move_into_place, staging_dir
from exporters.errors import ParityError
from exporters.onnx_export import write_onnx
from exporters.runtime import make_session, read_metadata, run


@dataclass(frozen=True)
class ParityCase:
    """One input: its shapes and the largest |torch - onnxruntime| over all outputs (inf on NaN/shape)."""

    shapes: tuple[tuple[int, ...], ...]
    max_abs_diff: float
    problem: str = ""  # "" when the outputs were comparable

    def line(self) -> str:
        shapes = ", ".join("x".join(map(str, s)) for s in self.shapes)
        return f"[{shapes}] max_abs_diff={self.max_abs_diff:.3g}" + (f" ({self.problem})" if self.problem else "")


@dataclass(frozen=True)
class ParityReport:
    """Per-input results of a parity check; ok when every case is within atol."""

    atol: float
    provider: str
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((c.max_abs_diff for c in self.cases), default=0.0)

    @property
    def ok(self) -> bool:
        return bool(self.cases) and all(c.max_abs_diff <= self.atol and not c.problem for c in self.cases)

    def summary(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return (f"parity {verdict} (atol {self.atol:g}, {self.provider}): "
                + "; ".join(c.line() for c in self.cases))


def check_parity(module: torch.nn.Module, path: str | os.PathLike, inputs_list: Sequence[Sequence[Any]],
                 atol: float = 1e-4, *, input_names: Sequence[str] | None = None,
                 provider: str = "cpu", session=None) -> ParityReport:
    """Run `module` (eval, no_grad) and the ONNX model on each input tuple and compare all outputs.

    Input names come from `input_names`, else from the file's "nasgraph.input_names" metadata, else
    the session's inputs in order. Inputs the exported graph dropped (unused) are not fed. Use at
    least two sequence lengths (and a batch size other than the export example's) to catch shapes
    that were frozen during export.
    """
    session = session or make_session(path, provider)
    names = list(input_names or _names_from_file(path) or [i.name for i in session.get_inputs()])
    graph_inputs = {i.name for i in session.get_inputs()}
    was_training = module.training
    module.eval()
    cases = []
    try:
        for inputs in inputs_list:
            inputs = tuple(inputs)
            if len(inputs) != len(names):
                raise ParityError(f"{len(inputs)} inputs given, the model takes {len(names)}: {names}")
            with torch.no_grad():
                expected = _flatten(module(*inputs))
            feeds = {n: t for n, t in zip(names, inputs) if n in graph_inputs}
            actual = run(session, feeds)
            shapes = tuple(tuple(t.shape) for t in inputs)
            cases.append(_compare(shapes, expected, actual))
    finally:
        module.train(was_training)
    provider_name = session.get_providers()[0].replace("ExecutionProvider", "").lower()
    return ParityReport(atol=atol, provider=provider_name, cases=cases)


def export_verified(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor],
                    path: str | os.PathLike, inputs_list: Sequence[Sequence[Any]], *, atol: float = 1e-4,
                    overwrite: bool = False, provider: str = "cpu",
                    **export_kwargs: Any) -> tuple[Path, ParityReport]:
    """Export to a staged file, check parity on `inputs_list`, and only then move it to `path`.

    `export_kwargs` go to `export_onnx` (dynamic_axes, input_names, metadata, opset, ...). The
    landed file carries "nasgraph.parity_max_abs_diff" and "nasgraph.parity_atol" metadata.
    A mismatch raises ParityError with every case's numbers and leaves no file behind.
    """
    dst = check_target(path, overwrite)
    with staging_dir(dst) as stage:
        report = stage_verified(module, example_inputs, stage / dst.name, inputs_list, atol=atol,
                                provider=provider, shown_name=dst.name, **export_kwargs)
        return move_into_place(stage / dst.name, dst, overwrite), report


def stage_verified(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], staged: Path,
                   inputs_list: Sequence[Sequence[Any]], *, atol: float = 1e-4, provider: str = "cpu",
                   shown_name: str = "", **export_kwargs: Any) -> ParityReport:
    """Export into `staged` (a path in a staging folder) and check parity there; ParityError on a
    mismatch. The caller moves the file into place (several files can land together)."""
    if not inputs_list:
        raise ParityError("export_verified needs at least one input tuple to check parity on")
    write_onnx(module, example_inputs, staged, **export_kwargs)
    report = check_parity(module, staged, inputs_list, atol,
                          input_names=export_kwargs.get("input_names"), provider=provider)
    if not report.ok:
        raise ParityError(f"{shown_name or staged.name}: {report.summary()}")
    stamp(staged, {"nasgraph.parity_max_abs_diff": f"{report.max_abs_diff:.3g}",
                   "nasgraph.parity_atol": f"{atol:g}"})
    return report


def _names_from_file(path) -> list[str] | None:
    raw = read_metadata(path).get("nasgraph.input_names")
    return json.loads(raw) if raw else None


def _flatten(out: Any) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, (tuple, list)):
        return [a for item in out for a in _flatten(item)]
    if isinstance(out, dict):
        return [a for key in out for a in _flatten(out[key])]
    raise ParityError(f"cannot compare a module output of type {type(out).__name__}")


def _compare(shapes, expected: list[np.ndarray], actual: list[np.ndarray]) -> ParityCase:
    if len(expected) != len(actual):
        return ParityCase(shapes, float("inf"), f"{len(expected)} torch outputs vs {len(actual)} onnx")
    worst = 0.0
    for i, (e, a) in enumerate(zip(expected, actual)):
        if e.shape != a.shape:
            return ParityCase(shapes, float("inf"), f"output {i}: torch {e.shape} vs onnx {a.shape}")
        if e.size == 0:
            continue
        diff = np.abs(e.astype(np.float64) - a.astype(np.float64))
        if np.isnan(diff).any():
            same_nan = np.array_equal(np.isnan(e), np.isnan(a))
            if not same_nan:
                return ParityCase(shapes, float("inf"), f"output {i}: NaN in only one of torch/onnx")
            diff = np.nan_to_num(diff, nan=0.0)
        worst = max(worst, float(diff.max()))
    return ParityCase(shapes, worst)


def stamp(path: Path, props: dict[str, str]) -> None:
    """Add metadata to an .onnx file in place (external weights, if any, stay where they are)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save_model(model, str(path))
