"""Write specs back to YAML (derived specs, resolved configs) with yaml.safe_dump on plain data."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from nasgraph.errors import NasgraphError
from nasgraph.outfile import atomic_write_text, refuse_special
from nasgraph.spec.schema import Spec


def spec_to_data(spec: Spec | BaseModel) -> dict[str, Any]:
    """Plain, YAML-safe data for a typed spec, in field order.

    A field that is None where its default is None (an unused form such as `graph`) is left out;
    every other value is written, so the file does not depend on today's defaults.
    """
    out: dict[str, Any] = {}
    for name, info in type(spec).model_fields.items():
        value = getattr(spec, name)
        if value is None and info.default is None:
            continue
        out[name] = _plain(value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return spec_to_data(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def dump_spec(spec_or_raw: Spec | dict, path: str | Path, overwrite: bool = False, header: str = "") -> Path:
    """Write a Spec (or raw spec data) to `path` as YAML; refuses to replace a file unless `overwrite`.

    `header`: comment lines put first. The write is atomic (a temporary file in the same folder, then a rename).
    """
    path = Path(path)
    data = spec_to_data(spec_or_raw) if isinstance(spec_or_raw, BaseModel) else _plain(spec_or_raw)
    if not isinstance(data, dict):
        raise TypeError(f"dump_spec wants a Spec or a mapping, got {type(spec_or_raw).__name__}")
    refuse_special(path)                               # before the exists check: /dev/null exists
    if path.exists() and not overwrite:
        raise NasgraphError(f"{path}: already exists; refusing to overwrite it (pass overwrite=True / --force)")
    text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=True, width=100)
    atomic_write_text(path, header + text)
    return path
