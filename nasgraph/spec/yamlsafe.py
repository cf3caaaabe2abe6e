"""The YAML dialect of spec files: PyYAML's safe composer with guards against hostile text.

- nesting deeper than MAX_DEPTH is an error at the offending node (not a RecursionError);
- numbers read as YAML 1.2 does where YAML 1.1 surprises: `1e-3` is a float (1.1: a string); `064`
  (1.1: octal 52) and `1:30` (1.1: base 60, 90) are errors asking for plain decimal;
- integers stay within 64 bits (no 4300-digit conversions), strings hold no lone surrogates;
- characters YAML refuses (control characters, surrogates) are located errors, like syntax errors,
  with the key of the block they are in.
"""
from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.nodes import ScalarNode

from nasgraph.spec.limits import INT64, MAX_DEPTH
from nasgraph.spec.paths import format_path

STD = "tag:yaml.org,2002:"
_FLOAT_EXP = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$")
_OCTAL_LOOKING = re.compile(r"^[-+]?0[0-9_]+$")
_MAX_INT_CHARS = 24            # past this, no integer fits in 64 bits (with sign and underscores)
_BLOCK_KEY = re.compile(r"^(\s*)(?:-\s+)?([^\s#'\"{}\[\],&*!|>%@`][^:#]*?|'[^']*'|\"[^\"]*\")\s*:(?:\s|$)")


class SpecComposer(yaml.SafeLoader):
    """SafeLoader used only to compose nodes (construction is nasgraph.spec.loader's), depth-limited."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.MarkedYAMLError(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


SpecComposer.add_implicit_resolver(f"{STD}float", _FLOAT_EXP, list("-+0123456789."))


def scalar_problem(node: ScalarNode, value: Any) -> str | None:
    """Why a plain scalar is refused (None: it is fine). `value` is its constructed form, or None
    before construction (then only the text is checked)."""
    text = node.value
    if node.tag == f"{STD}int" and value is None:
        if _OCTAL_LOOKING.match(text):
            return (f"'{text}' has a leading zero, which YAML 1.1 reads as octal "
                    f"({_octal(text)}); write the decimal number, or quote it for text")
        if ":" in text:
            return f"'{text}' is a base-60 number in YAML 1.1; quote it for text, or write the number"
        if len(text) > _MAX_INT_CHARS:
            return f"integer with {len(text)} digits is beyond the 64-bit range"
    if node.tag == f"{STD}float" and value is None and ":" in text:
        return f"'{text}' is a base-60 number in YAML 1.1; quote it for text, or write the number"
    if isinstance(value, int) and not isinstance(value, bool) and not INT64[0] <= value <= INT64[1]:
        return f"integer {text[:20]}{'...' if len(text) > 20 else ''} is beyond the 64-bit range"
    if isinstance(value, str) and _has_surrogate(value):
        return "text holds a lone surrogate (not valid Unicode)"
    return None


def _octal(text: str) -> str:
    try:
        return str(int(text.replace("_", ""), 8))
    except ValueError:
        return "not even a valid octal number"


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def reader_location(err: yaml.reader.ReaderError, text: str) -> tuple[int, int, str]:
    """(line, col, message) of a character YAML refuses."""
    pos = min(err.position, len(text))
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    code = err.character if isinstance(err.character, int) else ord(str(err.character)[:1] or "?")
    where = " (in a comment before the first key)" if not enclosing_key(text, line) and \
        text.splitlines()[line - 1].lstrip().startswith("#") else ""
    return line, col, f"character U+{code:04X} is not allowed in a spec (control character or invalid text){where}"


def enclosing_key(text: str, line: int) -> str:
    """The dotted key path of the block-style mapping that holds `line` (1-based), or "".

    A best-effort reading of indentation, used to name a key for errors where YAML could not be
    parsed (syntax errors, refused characters) and no located key path exists.
    """
    stack: list[tuple[int, str]] = []
    for raw in text.splitlines()[:line]:
        match = _BLOCK_KEY.match(raw)
        if not match:
            continue
        indent = len(match.group(1)) + (2 if raw.lstrip().startswith("-") else 0)
        key = match.group(2).strip().strip("'\"")
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
    return format_path(tuple(k for _, k in stack))
