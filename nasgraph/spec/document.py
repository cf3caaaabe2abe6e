"""A loaded spec: the typed Spec, the raw data it came from, and where each key was written."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasgraph.errors import SpecError
from nasgraph.spec.paths import KeyPath, Location, format_path, parse_path
from nasgraph.spec.schema import Spec


def locate(locations: dict[KeyPath, Location], path: KeyPath, file: str) -> Location:
    """The location of `path`, or of its nearest located ancestor, or just the file."""
    for end in range(len(path), -1, -1):
        if path[:end] in locations:
            return locations[path[:end]]
    return Location(file)


def located_error(message: str, path: KeyPath | str, locations: dict[KeyPath, Location],
                  file: str) -> SpecError:
    """A SpecError for `path` (tuple or "a.b[0]" text), placed at its nearest located ancestor."""
    if isinstance(path, str):
        path = parse_path(path) if path else ()
    path = tuple(path)
    loc = locate(locations, path, file)
    return SpecError(message, file=loc.file, line=loc.line, col=loc.col, path=format_path(path))


@dataclass
class SpecDocument:
    """A validated spec with its source.

    `raw` is the plain data after overrides (what the typed `spec` was validated from); `locations`
    maps key paths like ("model", "layers", 2) to where they were written (a file or an override).
    """

    spec: Spec
    raw: dict[str, Any]
    path: str
    locations: dict[KeyPath, Location] = field(default_factory=dict)
    force: bool = False     # build past the resource estimate's limits (--force)

    def error(self, message: str, path: KeyPath | str) -> SpecError:
        """SpecError for the key at `path`, e.g. ("model", "nodes", "att", "inputs", 0).

        Example:
            raise doc.error("unknown node 'embb' (did you mean 'emb'?)", ("model", "nodes", "att", "inputs", 0))
            # spec.yaml:12:11: model.nodes.att.inputs[0]: unknown node 'embb' (did you mean 'emb'?)
        """
        return located_error(message, path, self.locations, self.path)

    def location(self, path: KeyPath | str) -> Location:
        """Where `path` (or its nearest located ancestor) was written."""
        path = parse_path(path) if isinstance(path, str) and path else tuple(path or ())
        return locate(self.locations, path, self.path)
