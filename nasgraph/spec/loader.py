"""Safe YAML loading that remembers where every key and list item came from.

PyYAML composes the node tree (which carries source marks); we build plain Python data from it
ourselves, so only the standard YAML tags are accepted, duplicate keys are caught, and each key path
gets a 1-based (line, col).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from nasgraph.errors import SpecError
from nasgraph.infile import read_bounded
from nasgraph.spec.limits import MAX_SPEC_BYTES, MAX_VALUES
from nasgraph.spec.paths import KeyPath, Location, format_path
from nasgraph.spec.yamlsafe import STD as _STD, SpecComposer, enclosing_key, reader_location, scalar_problem

_SCALAR_TAGS = {f"{_STD}{t}" for t in ("str", "int", "float", "bool", "null")}
_TIMESTAMP = f"{_STD}timestamp"  # `2024-01-01` resolves to a date; a spec keeps it as text
_MERGE = f"{_STD}merge"


def _show_tag(tag: str) -> str:
    return "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag


class _Builder:
    """Turns a composed node tree into plain data plus a {key path: Location} map."""

    def __init__(self, file: str, constructor: yaml.SafeLoader):
        self.file, self.constructor = file, constructor
        self.locations: dict[KeyPath, Location] = {}
        self.active: set[int] = set()  # ids of nodes on the current path (recursive aliases)
        self.count = 0

    def where(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def fail(self, message: str, node: Node, path: KeyPath) -> SpecError:
        loc = self.where(node)
        return SpecError(message, file=loc.file, line=loc.line, col=loc.col, path=format_path(path))

    def build(self, node: Node, path: KeyPath) -> Any:
        self.count += 1
        if self.count > MAX_VALUES:
            raise self.fail(f"more than {MAX_VALUES:,} values (an alias expanding too far?)", node, path)
        if id(node) in self.active:
            raise self.fail("recursive alias: a value contains itself", node, path)
        self.active.add(id(node))
        try:
            if isinstance(node, MappingNode):
                return self.mapping(node, path)
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
            return self.scalar(node, path)
        finally:
            self.active.discard(id(node))

    def scalar(self, node: ScalarNode, path: KeyPath) -> Any:
        if node.tag == _TIMESTAMP:
            return node.value
        if node.tag not in _SCALAR_TAGS:
            raise self.disallowed(node, path)
        problem = scalar_problem(node, None)
        value = None if problem else self.constructor.construct_object(node, deep=True)
        problem = problem or scalar_problem(node, value)
        if problem:
            raise self.fail(problem, node, path)
        return value

    def sequence(self, node: SequenceNode, path: KeyPath) -> list:
        if node.tag != f"{_STD}seq":
            raise self.disallowed(node, path)
        items = []
        for index, child in enumerate(node.value):
            self.locations[path + (index,)] = self.where(child)
            items.append(self.build(child, path + (index,)))
        return items

    def mapping(self, node: MappingNode, path: KeyPath) -> dict:
        if node.tag != f"{_STD}map":
            raise self.disallowed(node, path)
        out: dict[str, Any] = {}
        first_seen: dict[str, Node] = {}
        merges = [value for key, value in node.value if key.tag == _MERGE]
        for source in merges:
            self.merge(source, path, out)
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.key(key_node, path)
            if key in first_seen:
                raise self.fail(f"duplicate key '{key}' (first given at line "
                                f"{first_seen[key].start_mark.line + 1})", key_node, path + (key,))
            first_seen[key] = key_node
            if key in out:                       # replaces a merged value: drop its locations
                self.forget(path + (key,))
            self.locations[path + (key,)] = self.where(key_node)
            out[key] = self.build(value_node, path + (key,))
        return out

    def merge(self, source: Node, path: KeyPath, out: dict) -> None:
        """`<<: *anchor` (or a list of anchors): copy keys not already present (explicit keys win)."""
        sources = source.value if isinstance(source, SequenceNode) else [source]
        for src in sources:
            if not isinstance(src, MappingNode):
                raise self.fail("'<<' merges mappings only (e.g. '<<: *defaults')", src, path)
            sub = _Builder(self.file, self.constructor)
            sub.count, sub.active = self.count, self.active
            merged = sub.build(src, path)
            self.count = sub.count
            depth = len(path)
            for p, loc in sub.locations.items():      # one pass: wide mappings stay linear
                if len(p) > depth and p[depth] in merged and p[depth] not in out:
                    self.locations[p] = loc
            for key, value in merged.items():
                out.setdefault(key, value)

    def key(self, node: Node, path: KeyPath) -> str:
        if not isinstance(node, ScalarNode) or node.tag != f"{_STD}str":
            written = node.start_mark.buffer[node.start_mark.index:node.end_mark.index] \
                if node.start_mark.buffer else str(node.value)
            written = " ".join(written.split())[:40] or "null"
            hint = " (YAML reads yes/no/on/off as booleans: quote the key)" if node.tag == f"{_STD}bool" else ""
            raise self.fail(f"keys must be strings, got {_show_tag(node.tag)} {written!r}{hint}", node,
                            path + (written,))
        problem = scalar_problem(node, node.value)
        if problem:
            raise self.fail(problem, node, path)
        return node.value

    def forget(self, prefix: KeyPath) -> None:
        """Drop locations below `prefix` (a merged value being replaced by an explicit one)."""
        for p in [p for p in self.locations if p[:len(prefix)] == prefix]:
            del self.locations[p]

    def disallowed(self, node: Node, path: KeyPath) -> SpecError:
        return self.fail(f"tag '{_show_tag(node.tag)}' is not allowed: a spec is plain YAML "
                         f"(mappings, lists, strings, numbers, booleans, null)", node, path)


def _yaml_error(err: yaml.YAMLError, file: str, text: str) -> SpecError:
    """One line at the error's place, naming the block's key when the text shows one."""
    if isinstance(err, yaml.reader.ReaderError):
        line, col, message = reader_location(err, text)
        return SpecError(message, file=file, line=line, col=col, path=enclosing_key(text, line))
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    message = f"YAML syntax error: {problem}" + (f" ({context})" if context else "")
    if mark is None:
        return SpecError(message, file=file)
    return SpecError(message, file=file, line=mark.line + 1, col=mark.column + 1,
                     path=enclosing_key(text, mark.line + 1))


def parse_yaml(text: str, file: str) -> tuple[Any, dict[KeyPath, Location]]:
    """Parse one YAML document from `text`: (plain data or None if empty, locations)."""
    loader = None
    try:
        loader = SpecComposer(text)              # the reader refuses control characters here
        node = loader.get_single_node()
        if node is None:
            return None, {}
        builder = _Builder(file, loader)
        builder.locations[()] = builder.where(node)
        return builder.build(node, ()), builder.locations
    except yaml.YAMLError as err:
        if "expected a single document" in str(err):
            mark = err.problem_mark
            raise SpecError("a spec file holds one YAML document; found a second '---'", file=file,
                            line=mark.line + 1, col=mark.column + 1) from None
        raise _yaml_error(err, file, text) from None
    finally:
        if loader is not None:
            loader.dispose()


def read_text(path: str | Path) -> str:
    """The file's text; SpecError (one line, with the file) if it is missing, unreadable or not UTF-8."""
    file = str(path)
    try:
        data = read_bounded(path, MAX_SPEC_BYTES)          # /dev/zero or a pipe nobody writes to: no hang
    except FileNotFoundError:
        raise SpecError("spec file not found", file=file) from None
    except IsADirectoryError:
        raise SpecError("is a directory, not a spec file", file=file) from None
    except OSError as err:
        raise SpecError(f"cannot read spec file: {err.strerror or err}", file=file) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"spec file is too large: a spec is at most {MAX_SPEC_BYTES:,} bytes "
                        f"(is it the right file?)", file=file)
    if b"\0" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        line = data[:data.index(b"\0")].count(b"\n") + 1
        raise SpecError("a binary file, not YAML text (it holds NUL bytes)", file=file, line=line, col=1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        col = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        text = data[:err.start].decode("utf-8", errors="replace")
        raise SpecError(f"not UTF-8 text (byte 0x{data[err.start]:02x})", file=file, line=line,
                        col=col, path=enclosing_key(text, line)) from None


def load_yaml_mapping(path: str | Path) -> tuple[dict, dict[KeyPath, Location]]:
    """Load a spec file that must hold one YAML mapping: (data, locations)."""
    file = str(path)
    data, locations = parse_yaml(read_text(path), file)
    if data is None:
        raise SpecError("spec file is empty (expected a mapping with name, task, model, ...)", file=file,
                        line=1, col=1)
    if not isinstance(data, dict):
        loc = locations[()]
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__} ({data!r:.40})"
        raise SpecError(f"a spec must be a mapping (name: ..., task: ..., model: ...), got {kind}",
                        file=file, line=loc.line, col=loc.col)
    return data, locations
