"""Pydantic validation of raw spec data, with the first error turned into a located SpecError."""
from __future__ import annotations

import difflib
import typing
from typing import Any, Callable

from pydantic import BaseModel, ValidationError

from nasgraph.config import bool_message, bool_misuse, did_you_mean, union_members
from nasgraph.errors import SpecError
from nasgraph.spec.paths import KeyPath
from nasgraph.spec.schema import Spec

ErrorAt = Callable[[str, KeyPath], SpecError]


def validate(raw: dict, error_at: ErrorAt) -> Spec:
    """Spec.model_validate(raw); the first problem becomes `error_at(message, key path)`."""
    _check_booleans(raw, Spec, (), error_at)
    try:
        return Spec.model_validate(raw)
    except ValidationError as err:
        raise _first_error(err.errors(), raw, error_at) from None


def _check_booleans(value: Any, tp: Any, path: KeyPath, error_at: ErrorAt) -> None:
    """A boolean where the schema wants a number (`steps: true`) is an error, not 1."""
    item = bool_misuse(tp, value)
    if item is not None:
        raise error_at(bool_message(value), path + ((int(item[1:-1]),) if item else ()))
    if isinstance(value, dict):
        children = value.items()
    elif isinstance(value, list):
        children = enumerate(value)
    else:
        return
    for key, child in children:
        sub = _step(tp, key)
        if sub is not None:
            _check_booleans(child, sub, path + (key,), error_at)


def _first_error(errors: list[dict], raw: dict, error_at: ErrorAt) -> SpecError:
    first = errors[0]
    if first["type"] == "missing":  # a misspelt key explains a missing one: report the typo
        parent = tuple(first["loc"][:-1])
        first = next((e for e in errors if e["type"] == "extra_forbidden" and tuple(e["loc"][:-1]) == parent),
                     first)
    kind, loc = first["type"], tuple(first["loc"])
    path = raw_path(loc, raw, missing=kind == "missing")
    if kind == "extra_forbidden":
        key = str(path[-1])
        valid = field_names(path[:-1])
        listed = f"; valid: {', '.join(valid)}" if valid else ""
        return error_at(f"unknown key '{key}'{did_you_mean(key, valid)}{listed}", path)
    if kind == "missing" and isinstance(path[-1], int):
        return error_at(f"too few items: item [{path[-1]}] is missing", path)
    if kind == "missing":
        return error_at(f"missing required key '{path[-1]}'", path)
    if kind == "value_error":  # a model validator's own message
        return error_at(str(first["ctx"]["error"]), path)
    # union members each report: "Input should be a valid string" + "... a valid dictionary"
    messages = [e["msg"] for e in errors if raw_path(tuple(e["loc"]), raw, False) == path]
    message = messages[0] + "".join(f", or {m.removeprefix('Input should be ')}" for m in messages[1:])
    return error_at(f"{message} (got {_show(first.get('input'))})", path)


def raw_path(loc: tuple, raw: Any, missing: bool) -> KeyPath:
    """Map a pydantic error location onto the raw data: drop union-member tags like 'str'.

    A trailing element absent from the data is kept only for a missing key.
    """
    path: list[str | int] = []
    node = raw
    for i, element in enumerate(loc):
        if isinstance(node, dict) and isinstance(element, str) and element in node:
            node = node[element]
        elif isinstance(node, list) and isinstance(element, int) and 0 <= element < len(node):
            node = node[element]
        elif not (missing and i == len(loc) - 1):
            continue
        path.append(element)
    return tuple(path)


def field_names(path: KeyPath) -> list[str]:
    """Field names of the typed model found at `path` below Spec ([] if it is not a model)."""
    tp: Any = Spec
    for element in path:
        tp = _step(tp, element)
        if tp is None:
            return []
    model = _as_model(tp)
    return list(model.model_fields) if model else []


def nearest_path(path: KeyPath, raw: dict) -> KeyPath | None:
    """None when `path` can exist in a spec; else the closest path that can (a typo fixed per key).

    Typed sections are checked against the schema, `task.*` against the task kind's options; the
    free-form parts (graph steps, nodes, attention options, a strategy's options beside the shared
    `search.*` keys) are checked when the spec is validated.
    """
    tp: Any = Spec
    fixed: list[str | int] = []
    for i, element in enumerate(path):
        if i == 1 and path[0] == "task" and isinstance(element, str):
            return _nearest_task_key(path, raw)
        if i == 1 and path[0] == "search" and element not in _as_model(tp).model_fields:
            return None   # a strategy's own option: its Config checks it when the spec is validated
        model = _as_model(tp)
        if model is not None and isinstance(element, str) and element not in model.model_fields:
            close = difflib.get_close_matches(element, list(model.model_fields), n=1, cutoff=0.6)
            return tuple(fixed) + ((close[0],) if close else ()) + (path[i + 1:] if close else ())
        tp = _step(tp, element)
        fixed.append(element)
        if tp is None or tp is Any:
            return None
    return None


def task_fields(raw: dict) -> list[str]:
    """Options of the task kind named in `raw` ([] when the kind is missing or unknown)."""
    from nasgraph import tasks
    from nasgraph.errors import ConfigError

    kind = raw["task"].get("kind") if isinstance(raw.get("task"), dict) else None
    try:
        return list(tasks.get(kind).Config.model_fields) if isinstance(kind, str) else []
    except ConfigError:
        return []


def _nearest_task_key(path: KeyPath, raw: dict) -> KeyPath | None:
    fields = task_fields(raw)
    if not fields or path[1] in fields:
        return None
    close = difflib.get_close_matches(str(path[1]), fields, n=1, cutoff=0.6)
    return ("task", close[0]) + path[2:] if close else ("task",)


def _as_model(tp: Any) -> type[BaseModel] | None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for member in union_members(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return member
    return None


def _step(tp: Any, element: str | int) -> Any:
    for member in union_members(tp):
        model = _as_model(member)
        if model is not None and isinstance(element, str) and element in model.model_fields:
            return model.model_fields[element].annotation
        origin, args = typing.get_origin(member), typing.get_args(member)
        if isinstance(element, int) and origin in (list, tuple) and args:
            return args[0]
        if isinstance(element, str) and origin is dict and len(args) == 2:
            return args[1]
    return None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
