"""Command-line overrides: `--set train.steps=200`, `--set model.layers[1].attention.candidates=[softmax, linear]`.

The value is read as YAML (a scalar or a flow collection), with the same safe loader as spec files.
"""
from __future__ import annotations

from typing import Any

from nasgraph.errors import SpecError
from nasgraph.spec.loader import parse_yaml
from nasgraph.spec.paths import KeyPath, Location, format_path, parse_path
from nasgraph.spec.validate import field_names, nearest_path, task_fields


def parse_override(text: str) -> tuple[KeyPath, Any, str]:
    """"a.b[0]=value" -> (("a", "b", 0), parsed value, origin label "<--set a.b[0]=value>")."""
    origin = f"<--set {text}>"
    key, sep, value_text = text.partition("=")
    if not sep or not key.strip():
        raise SpecError("an override is KEY.PATH=VALUE, e.g. train.steps=200", file=origin)
    try:
        path = parse_path(key.strip())
    except ValueError as err:
        raise SpecError(str(err), file=origin) from None
    try:
        value, _ = parse_yaml(value_text, origin)
    except SpecError as err:  # re-anchor: a column inside the value is not useful on a command line
        raise SpecError(f"bad value '{value_text}': {err.message}", file=origin,
                        path=format_path(path)) from None
    return path, value, origin


def apply_override(raw: dict, locations: dict[KeyPath, Location], text: str) -> None:
    """Set one override in `raw` (in place) and record its origin for every key below it.

    Missing mapping keys on the way are created (`search.objective.flops.weight=0.2` works on a spec
    without `search:`); list indices must exist. A bad path is a SpecError naming it.
    """
    path, value, origin = parse_override(text)
    nearest = nearest_path(path, raw)
    if nearest is not None and not _scalar_at(raw, nearest, len(path)):   # a scalar: the walk says so below
        keys = field_names(nearest) or sorted(task_fields(raw))
        hint = (f"the nearest valid path is {format_path(nearest)}" if len(nearest) == len(path) else
                f"valid keys in {format_path(nearest) or 'the top level'}: {', '.join(keys)}")
        raise SpecError(f"no such key in the spec; {hint}", file=origin, path=format_path(path))
    node: Any = raw
    for depth, element in enumerate(path[:-1]):
        if isinstance(path[depth + 1], int) and isinstance(node, dict) and node.get(element) is None:
            raise SpecError(f"{format_path(path[:depth + 1])} is not in the spec: a list item can be set only "
                            f"when the list is there (set the whole list instead)", file=origin,
                            path=format_path(path))
        node = _step(node, element, path[:depth + 1], origin)
    last = path[-1]
    _check_container(node, last, path, origin)
    node[last] = value
    for p in [p for p in locations if p[:len(path)] == path]:
        del locations[p]
    locations[path] = Location(origin)


def _scalar_at(raw: Any, path: KeyPath, depth: int) -> bool:
    """The spec holds a scalar at `path`, above a key `depth` deep (e.g. `d_model: 32` under `d_model.x`)."""
    for element in path:
        if not isinstance(raw, (dict, list)):
            return False
        try:
            raw = raw[element]
        except (KeyError, IndexError, TypeError):
            return False
    return len(path) < depth and raw is not None and not isinstance(raw, (dict, list))


def _check_container(node: Any, element: str | int, path: KeyPath, origin: str) -> None:
    where = format_path(path[:-1]) or "the spec"
    if isinstance(element, int):
        if not isinstance(node, list):
            raise SpecError(f"cannot index [{element}]: {where} is {_kind(node)}, not a list",
                            file=origin, path=format_path(path))
        if not 0 <= element < len(node):
            raise SpecError(f"index [{element}] is out of range: {where} has {len(node)} item(s)",
                            file=origin, path=format_path(path))
    elif not isinstance(node, dict):
        raise SpecError(f"cannot set key '{element}': {where} is {_kind(node)}, not a mapping",
                        file=origin, path=format_path(path))


def _step(node: Any, element: str | int, path: KeyPath, origin: str) -> Any:
    """Descend one level, creating a missing (or null) mapping key."""
    _check_container(node, element, path, origin)
    if isinstance(element, str) and node.get(element) is None:
        node[element] = {}
    return node[element]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r:.30}"
