"""Export a torch module to one checked ONNX file: dynamo exporter, dynamic axes, metadata, no clobbering.

Example:
    >>> from nasgraph.attention import build
    >>> attn = build("softmax", d_model=32, n_heads=4).eval()
    >>> x, mask = torch.randn(2, 16, 32), torch.ones(2, 16, dtype=torch.bool)
    >>> export_onnx(attn, (x, mask), "attn.onnx", input_names=["x", "mask"], output_names=["y"],
    ...             dynamic_axes=batch_seq_axes("x", "mask"), metadata={"attention": "softmax"})
    PosixPath('.../attn.onnx')
"""
from __future__ import annotations

import contextlib
import inspect
import io
import json
import logging
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Mapping, Sequence

import onnx
import torch

from exporters._files import check_target, move_into_place, staging_dir
from exporters.errors import ExportError
from exporters.linear_attention import exporting_with
from nasgraph.textfmt import printable

DynamicAxes = Mapping[str, Mapping[int, str]]  # {"x": {0: "batch", 1: "seq"}}
Translations = Mapping[Callable, Callable]  # torch op -> onnxscript function (custom_translation_table)
GraphPass = Callable[[onnx.ModelProto], None]  # edits an exported model in place, before it is checked
MIN_DYNAMO_OPSET = 18      # opset 17 yields an invalid Split (num_outputs) from the dynamo exporter
SELF_CONTAINED_LIMIT = 1_800_000_000  # bytes of weights; protobuf cannot serialise a file >= 2 GiB
RESERVED_KEYS = ("nasgraph.exporter", "nasgraph.dynamo_error", "nasgraph.opset", "nasgraph.torch",
                 "nasgraph.input_names", "nasgraph.output_names", "nasgraph.dynamic_axes",
                 "nasgraph.axis_max")


class LegacyExporterWarning(UserWarning):
    """The dynamo exporter failed and the deprecated TorchScript exporter was used instead."""


def batch_seq_axes(*names: str, batch: str = "batch", seq: str = "seq") -> dict[str, dict[int, str]]:
    """Dynamic axes for inputs laid out (B, T, ...): `batch_seq_axes("x", "mask")`."""
    return {name: {0: batch, 1: seq} for name in names}


def export_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: str | os.PathLike,
                *, dynamic_axes: DynamicAxes | None = None, axis_max: Mapping[str, int] | None = None,
                opset: int = 18, input_names: Sequence[str] | None = None,
                output_names: Sequence[str] | None = None, metadata: Mapping[str, str] | None = None,
                overwrite: bool = False, fallback: bool = True, translations: Translations | None = None,
                graph_pass: GraphPass | None = None) -> Path:
    """Export `module` (in eval mode) to a single self-contained, checked .onnx file at `path`.

    Args:
        module: the model; called as module(*example_inputs).
        example_inputs: positional tensors used to trace; use a batch > 1 on dynamic axes (a size
            of 1 is specialised by torch.export).
        path: target file; written to a temporary file beside it and moved into place atomically.
        dynamic_axes: {input_name: {axis: axis_name}}; equal names are the same size
            (see `batch_seq_axes`). Output axes follow from the graph. An axis the model's code
            pins to the example's size raises ExportError instead of exporting a static graph.
        axis_max: largest size per axis name, e.g. {"seq": 512}; recorded as "nasgraph.axis_max"
            metadata for callers to enforce (the exporter infers ranges from the model's own
            checks, such as a max_len test). The example inputs must respect it.
        opset: ONNX opset, >= 18 for the dynamo exporter.
        input_names / output_names: graph names; inputs default to forward()'s parameter names.
        metadata: str -> str pairs stored as ONNX metadata_props (read back with read_metadata).
        overwrite: replace an existing file (default: ExportError).
        fallback: on a dynamo failure, retry with the legacy TorchScript exporter (warns with
            LegacyExporterWarning and records "nasgraph.exporter"/"nasgraph.dynamo_error").
        translations: custom translations for the dynamo exporter, e.g.
            `exporters.fused_attention.contrib_translations()` (ORT's fused attention kernel); the
            legacy exporter ignores them.
        graph_pass: edits the exported ModelProto in place before it is checked and saved (e.g.
            `exporters.guards.token_guards`).

    Returns the absolute path written. Weights over ~1.8 GB go to a `<name>.onnx.data` sibling.
    """
    dst = check_target(path, overwrite)
    with staging_dir(dst) as stage:
        staged = write_onnx(module, example_inputs, stage / dst.name, dynamic_axes=dynamic_axes,
                            axis_max=axis_max, opset=opset, input_names=input_names,
                            output_names=output_names, metadata=metadata, fallback=fallback,
                            translations=translations, graph_pass=graph_pass)
        return move_into_place(staged, dst, overwrite)


def write_onnx(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor], path: Path, *,
               dynamic_axes: DynamicAxes | None = None, axis_max: Mapping[str, int] | None = None,
               opset: int = 18, input_names: Sequence[str] | None = None,
               output_names: Sequence[str] | None = None, metadata: Mapping[str, str] | None = None,
               fallback: bool = True, translations: Translations | None = None,
               graph_pass: GraphPass | None = None) -> Path:
    """Export and check into `path` directly (no staging); `export_onnx` is the safe public entry."""
    args = tuple(example_inputs)
    for i, a in enumerate(args):
        if not isinstance(a, torch.Tensor):
            raise ExportError(f"example input {i} is {type(a).__name__}; only tensors are supported")
    if opset < MIN_DYNAMO_OPSET:
        raise ExportError(f"opset {opset} is too old: the dynamo exporter needs >= {MIN_DYNAMO_OPSET}")
    names = list(input_names or _forward_names(module, len(args)))
    if len(names) != len(args):
        raise ExportError(f"{len(names)} input_names {names} for {len(args)} example inputs")
    axes = {k: dict(v) for k, v in (dynamic_axes or {}).items()}
    _check_axes(axes, args, names, list(output_names or []))
    bounds = _check_axis_max(dict(axis_max or {}), axes, args, names)
    props = _check_metadata(metadata)

    was_training = module.training
    module.eval()
    try:
        with _quiet_exporter():
            try:
                proto = _dynamo(module, args, names, output_names, axes, opset, translations)
                props["nasgraph.exporter"] = "dynamo"
            except Exception as err:  # noqa: BLE001 - any dynamo failure may be rescued by legacy
                if not fallback:
                    raise ExportError(f"dynamo export failed: {_first_line(err)}") from err
                warnings.warn(f"dynamo ONNX export failed ({_first_line(err)}); falling back to the "
                              "deprecated TorchScript exporter", LegacyExporterWarning, stacklevel=2)
                try:
                    proto = _legacy(module, args, names, output_names, axes, opset)
                except Exception as legacy_err:
                    raise ExportError(f"dynamo export failed ({_first_line(err)}) and so did the legacy "
                                      f"exporter ({_first_line(legacy_err)})") from legacy_err
                props["nasgraph.exporter"] = "torchscript-legacy"
                props["nasgraph.dynamo_error"] = _first_line(err)[:500]
    finally:
        module.train(was_training)

    _check_dynamic(proto, axes)
    if graph_pass is not None:
        graph_pass(proto)
    props.update({"nasgraph.opset": str(opset), "nasgraph.torch": torch.__version__,
                  "nasgraph.input_names": json.dumps(names),
                  "nasgraph.output_names": json.dumps([o.name for o in proto.graph.output]),
                  "nasgraph.dynamic_axes": json.dumps(axes, sort_keys=True)})
    if bounds:
        props["nasgraph.axis_max"] = json.dumps(bounds, sort_keys=True)
    del proto.metadata_props[:]
    for key, value in sorted(props.items()):
        proto.metadata_props.add(key=key, value=printable(value))   # protobuf strings are UTF-8: a non-UTF-8 path
    weights = sum(len(t.raw_data) for t in proto.graph.initializer)
    big = weights >= SELF_CONTAINED_LIMIT
    onnx.save_model(proto, str(path), save_as_external_data=big, all_tensors_to_one_file=True,
                    location=path.name + ".data" if big else None)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        raise ExportError(f"exported model fails onnx.checker: {_first_line(err)}") from err
    return path


def _dynamo(module, args, names, output_names, axes, opset, translations=None) -> onnx.ModelProto:
    # Axis names as strings: torch.onnx turns them into Dim.DYNAMIC (guards narrow the range instead
    # of failing, e.g. a max_len check) and names the ONNX dims after them. Named torch.export.Dim
    # objects are stricter and torch.onnx "repairs" their violations by specialising the axis.
    shapes = _nest_varargs(module, tuple(dict(axes[name]) if name in axes else None for name in names))
    with exporting_with(translations):                                 # recurrences: LinearAttention if translated
        program = torch.onnx.export(module, args, None, dynamo=True, opset_version=opset,
                                    input_names=names, output_names=output_names,
                                    dynamic_shapes=shapes if axes else None, verbose=False,
                                    custom_translation_table=dict(translations) if translations else None)
    return program.model_proto


def _nest_varargs(module: torch.nn.Module, shapes: tuple) -> tuple:
    """torch.export wants the shapes of a `forward(a, b, *rest)` as (a, b, (rest...))."""
    params = list(inspect.signature(module.forward).parameters.values())
    fixed = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not any(p.kind == p.VAR_POSITIONAL for p in params):
        return shapes
    return shapes[:len(fixed)] + (shapes[len(fixed):],)


def _legacy(module, args, names, output_names, axes, opset) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(module, args, buffer, dynamo=False, opset_version=opset, input_names=names,
                      output_names=output_names, dynamic_axes=axes or None)
    return onnx.load_from_string(buffer.getvalue())


def _forward_names(module: torch.nn.Module, n: int) -> list[str]:
    params = [p.name for p in inspect.signature(module.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return params[:n] if len(params) >= n else [f"input_{i}" for i in range(n)]


def _check_axes(axes: dict, args: tuple, names: list[str], outputs: list[str]) -> None:
    for name, spec in axes.items():
        if name in outputs:
            continue
        if name not in names:
            raise ExportError(f"dynamic_axes names '{name}', which is not an input; inputs: "
                              f"{', '.join(names)}; outputs: {', '.join(outputs) or '(unnamed)'}")
        ndim = args[names.index(name)].dim()
        for axis in spec:
            if not 0 <= axis < ndim:
                raise ExportError(f"dynamic_axes['{name}'] has axis {axis}; input '{name}' has {ndim} dims")


def _check_axis_max(bounds: dict[str, int], axes: dict, args: tuple, names: list[str]) -> dict[str, int]:
    axis_names = {n for spec in axes.values() for n in spec.values()}
    for axis_name, limit in bounds.items():
        if axis_name not in axis_names:
            raise ExportError(f"axis_max names '{axis_name}', which is no dynamic axis; "
                              f"dynamic axes: {', '.join(sorted(axis_names)) or '(none)'}")
        for name, spec in axes.items():
            for axis, n in spec.items():
                if n == axis_name and name in names and args[names.index(name)].shape[axis] > limit:
                    raise ExportError(f"example input '{name}' has {axis_name}="
                                      f"{args[names.index(name)].shape[axis]} > axis_max {limit}")
    return bounds


def _check_dynamic(proto: onnx.ModelProto, axes: dict) -> None:
    """Every requested dynamic input axis must be symbolic in the graph, not silently specialised."""
    for inp in proto.graph.input:
        for axis in axes.get(inp.name, {}):
            dim = inp.type.tensor_type.shape.dim[axis]
            if not dim.dim_param:
                raise ExportError(f"axis {axis} of input '{inp.name}' was specialised to {dim.dim_value} "
                                  "by the exporter: the model's code fixes that size")


def _check_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    props = dict(metadata or {})
    for key, value in props.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ExportError(f"metadata must map str to str; got {key!r}: {type(value).__name__}")
        if key in RESERVED_KEYS:
            raise ExportError(f"metadata key '{key}' is written by the exporter; reserved: "
                              f"{', '.join(RESERVED_KEYS)}")
    return props


def _first_line(err: BaseException) -> str:
    """`Type: first line`, plus the root cause's (the exporter wraps the informative error)."""
    def one(e: BaseException) -> str:
        lines = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip().splitlines()
        return f"{type(e).__name__}: {lines[0] if lines else ''}"

    root = err
    while root.__cause__ is not None and root.__cause__ is not root:
        root = root.__cause__
    return one(err) if root is err else f"{one(err)} <- {one(root)}"


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's known noise (torchvision op registration, axis renaming notes)."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        # the exporter prints its capture steps unconditionally; failures still raise with details
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.filterwarnings("ignore", message=r".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", message=r".*treespec, LeafSpec.*", category=FutureWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx.*")
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export.*")
            yield
    finally:
        registration.setLevel(level)
