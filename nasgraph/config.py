"""Typed configs for registered components: unknown keys are rejected with the valid ones listed."""
from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError

from nasgraph.errors import ConfigError


class StrictConfig(BaseModel):
    """Base for every typed config: frozen, no unknown keys, finite floats."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def numbers_only(annotation: Any) -> bool:
    """Whether a field typed `annotation` takes numbers only (pydantic alone would read True as 1)."""
    members = [m for m in union_members(annotation) if m is not type(None)]
    return bool(members) and all(_is_number(m) for m in members)


def _is_number(annotation: Any) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        return numbers_only(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Literal:
        return all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in typing.get_args(annotation))
    return annotation in (int, float)


def bool_misuse(annotation: Any, value: Any) -> str | None:
    """'' (the value itself) or '[i]' (an item) when a boolean sits where a number is meant; else None."""
    if isinstance(value, bool):
        return "" if numbers_only(annotation) else None
    if isinstance(value, (list, tuple)):
        for member in union_members(annotation):
            args = typing.get_args(member)
            if typing.get_origin(member) in (list, tuple) and args:
                item_types = args[:-1] if args[-1] is Ellipsis else args
                for i, item in enumerate(value):
                    item_type = item_types[min(i, len(item_types) - 1)] if len(item_types) > 1 else item_types[0]
                    if isinstance(item, bool) and numbers_only(item_type):
                        return f"[{i}]"
    return None


def union_members(tp: Any) -> tuple:
    """The members of a Union (or `tp` itself)."""
    origin = typing.get_origin(tp)
    return typing.get_args(tp) if origin in (typing.Union, types.UnionType) else (tp,)


def bool_message(value: Any) -> str:
    shown = value if isinstance(value, bool) else next(v for v in value if isinstance(v, bool))
    return f"{str(shown).lower()} is a boolean, not a number (YAML reads true/false/yes/no/on/off as booleans)"


def did_you_mean(bad: str, valid: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(bad), list(valid), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def parse_config(cls: type[StrictConfig], options: dict[str, Any] | None, what: str) -> StrictConfig:
    """Build `cls` from `options`; on failure raise ConfigError naming `what`, the key and the valid keys."""
    options = dict(options or {})
    valid = list(cls.model_fields)
    for key in options:
        if key not in cls.model_fields:
            listed = ", ".join(valid) if valid else "(none)"
            raise ConfigError(f"{what}: unknown option '{key}'{did_you_mean(key, valid)}; valid: {listed}",
                              key=str(key))
        item = bool_misuse(cls.model_fields[key].annotation, options[key])
        if item is not None:
            raise ConfigError(f"{what}: option '{key}{item}': {bool_message(options[key])}",
                              key=f"{key}.{item[1:-1]}" if item else str(key))
    try:
        return cls(**options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{what}: option '{key}': {first['msg']} (got {first.get('input')!r})",
                          key=key) from None
