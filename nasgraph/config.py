"""Typed configs for registered components: unknown keys are rejected with the valid ones listed."""
from __future__ import annotations

import difflib
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, ValidationError

from nasgraph.errors import ConfigError


class StrictConfig(BaseModel):
    """Base for every typed config: frozen, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    try:
        return cls(**options)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{what}: option '{key}': {first['msg']} (got {first.get('input')!r})",
                          key=key) from None
