"""Attention candidates as written in a spec: a name or a one-key mapping {name: {options}}."""
from __future__ import annotations

from typing import Any

Candidate = str | dict[str, dict[str, Any]]


def normalize_candidate(c: Candidate) -> tuple[str, dict[str, Any]]:
    """"softmax" -> ("softmax", {}); {"local": {"window": 32}} -> ("local", {"window": 32})."""
    if isinstance(c, str):
        return c, {}
    if isinstance(c, dict) and len(c) == 1:
        name, options = next(iter(c.items()))
        return str(name), dict(options or {})
    raise ValueError("a candidate is a name (softmax) or a one-key mapping {name: {options}}, "
                     f"got {c!r:.60}")


def candidate_label(name: str, options: dict[str, Any]) -> str:
    """A readable, stable label: local(window=32)."""
    if not options:
        return name
    return f"{name}(" + ",".join(f"{k}={options[k]}" for k in sorted(options)) + ")"
