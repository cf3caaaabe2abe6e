"""Key paths into a spec: tuples like ("model", "layers", 2, "attention") <-> "model.layers[2].attention"."""
from __future__ import annotations

import re
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_TOKEN = re.compile(r"""\.?([A-Za-z0-9_\-]+)|\[(\d+)\]|\[(['"])(.*?)\3\]""")


@dataclass(frozen=True)
class Location:
    """Where a value came from: a file (or `<--set ...>` for an override), 1-based line and column."""

    file: str
    line: int | None = None
    col: int | None = None


def format_path(path: KeyPath) -> str:
    """("model", "layers", 2, "attention") -> "model.layers[2].attention"; odd keys are quoted: ['a.b']."""
    out = ""
    for element in path:
        if isinstance(element, int):
            out += f"[{element}]"
        elif _PLAIN_KEY.fullmatch(element):
            out += f".{element}" if out else element
        else:
            out += f"[{element!r}]"
    return out


def parse_path(text: str) -> KeyPath:
    """Inverse of format_path. ValueError (naming the bad part) on malformed text."""
    path: list[str | int] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or (pos == 0 and text.startswith(".")) or (pos > 0 and match.group(1) and text[pos] != "."):
            raise ValueError(f"malformed key path '{text}' at '{text[pos:]}' "
                             f"(expected keys separated by '.', list indices as [0])")
        key, index, _, quoted = match.groups()
        path.append(key if key is not None else int(index) if index is not None else quoted)
        pos = match.end()
    if not path:
        raise ValueError("empty key path")
    return tuple(path)
