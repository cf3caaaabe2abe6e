"""The spec language: `load_spec(path, overrides)` -> SpecDocument, `dump_spec(spec, path)`.

    doc = load_spec("specs/listops.yaml", ["train.steps=200"])
    doc.spec.model.d_model            # typed access
    raise doc.error("bad thing", ("model", "layers", 2))   # spec.yaml:14:5: model.layers[2]: bad thing

Every problem is a SpecError `file:line:col: key.path: message`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nasgraph.plugins import import_spec_plugins
from nasgraph.spec.checks import check_attention, check_model, check_strategy, check_task, split_candidate
from nasgraph.spec.document import SpecDocument, located_error
from nasgraph.spec.dump import dump_spec, spec_to_data
from nasgraph.spec.loader import load_yaml_mapping
from nasgraph.spec.overrides import apply_override
from nasgraph.spec.paths import KeyPath, Location, format_path, parse_path
from nasgraph.spec.schema import AttentionSpec, ModelSpec, Spec
from nasgraph.spec.search_check import check_decode_objective, check_search
from nasgraph.spec.validate import validate


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> SpecDocument:
    """Load, override, validate and check a spec file.

    Args:
        path: a YAML spec file.
        overrides: "key.path=value" strings applied in order, values read as YAML
            (`train.steps=200`, `model.attention.candidates=[softmax, linear]`).

    Raises:
        SpecError: the first problem, located (file, line, column, key path).
    """
    file = str(path)
    raw, locations = load_yaml_mapping(path)
    for text in overrides:
        apply_override(raw, locations, text)

    def error_at(message: str, key_path: KeyPath):
        return located_error(message, key_path, locations, file)

    _absolute_task_paths(raw, Path(file).parent, error_at)
    import_spec_plugins(raw, Path(file).parent, error_at)
    spec = validate(raw, error_at)
    task = check_task(raw, error_at, base_dir=str(Path(file).parent))
    from nasgraph import tasks  # loaded by check_task already

    causal_task = tasks.get(task.kind).output == "token"
    check_model(spec, raw, error_at, max_len=getattr(task, "max_len", None), causal_task=causal_task)
    check_strategy(spec, error_at)
    check_search(spec, raw, error_at)
    check_decode_objective(spec, raw, error_at, causal_task)
    return SpecDocument(spec=spec, raw=raw, path=file, locations=locations)


def _absolute_task_paths(raw: dict, base: Path, error_at) -> None:
    """Relative data paths (`task.path`, `task.*_path`) are relative to the spec's folder; make them
    absolute so that the spec snapshot in a run folder still finds the data."""
    task = raw.get("task")
    if not isinstance(task, dict):
        return
    for key, value in task.items():
        if (key == "path" or str(key).endswith("_path")) and isinstance(value, str) and value:
            try:
                task[key] = str((base / value).resolve())
            except (OSError, ValueError, RuntimeError) as err:   # a NUL byte, a symlink loop
                raise error_at(f"not a usable file path {value!r} ({err})", ("task", key)) from None


__all__ = ["AttentionSpec", "KeyPath", "Location", "ModelSpec", "Spec", "SpecDocument", "check_attention",
           "dump_spec", "format_path", "load_spec", "parse_path", "spec_to_data", "split_candidate"]
