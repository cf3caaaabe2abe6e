"""Run-folder ownership: every folder a command writes carries `.nasgraph-run.json` saying its kind.

    claim(out, "train")                 # new or empty folder: marker written; else refused
    claim(out, "train", resume=True)    # a train folder (marker or an older run's files) continues
    claim(out, "bench", replace=True)   # a bench folder's report may be replaced (--force)
    require(run, "train")               # readers (eval, export, derive) check the kind too

A folder of another kind, a non-empty folder that is no run, or a file is refused before anything is
written. Folders written before markers existed are recognised by their files (`legacy_kind`).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from nasgraph import __version__
from nasgraph.errors import NasgraphError
from nasgraph.outfile import atomic_write

MARKER = ".nasgraph-run.json"
KINDS = ("search", "train", "bench", "demo", "compile")
UNSTARTED = {MARKER, "spec.yaml"}   # a run whose folder holds only these never did any work
_COMMAND = {"search": "nasgraph search", "train": "nasgraph train", "bench": "nasgraph bench",
            "demo": "nasgraph demo", "compile": "nasgraph compile --out"}


def read_marker(path: str | Path) -> dict | None:
    """The folder's marker, or None when it has none; a damaged marker is an error naming it."""
    p = Path(path) / MARKER
    if not p.is_file():
        return None
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise NasgraphError(f"{p}: damaged run marker ({type(err).__name__}); the folder's kind is unknown, "
                            f"so nothing was written (delete the marker only if the folder is yours)") from None
    if not isinstance(data, dict) or data.get("kind") not in KINDS:
        raise NasgraphError(f"{p}: not a nasgraph run marker (kind must be one of {', '.join(KINDS)})")
    return data


def legacy_kind(path: Path) -> str | None:
    """The kind of a run folder written before markers existed, from its files."""
    has = lambda name: (path / name).exists()  # noqa: E731
    if has("search.json") or (has("spec.yaml") and any(path.glob("seed*/metrics.jsonl"))):
        return "search"
    if has("spec.yaml") and (has("checkpoints") or has("metrics.jsonl") or has("result.json")):
        return "train"
    if has("report.json") and has("report.md"):
        return "bench"
    if has("graph.json") and has("summary.json"):
        return "compile"
    if (path / "compile").is_dir() and (path / "search").is_dir() and legacy_kind(path / "compile") == "compile" \
            and legacy_kind(path / "search") == "search":  # `nasgraph demo`'s layout
        return "demo"
    return None


def kind_of(path: str | Path) -> str | None:
    """A folder's run kind (its marker, else its files), or None."""
    path = Path(path)
    if not path.is_dir():
        return None
    marker = read_marker(path)
    return marker["kind"] if marker else legacy_kind(path)


def _entries(path: Path) -> set[str]:
    try:
        return {p.name for p in path.iterdir()}
    except OSError as err:
        raise NasgraphError(f"{path}: cannot read the folder ({err.strerror})") from None


def claim(path: str | Path, kind: str, *, resume: bool = False, replace: bool = False) -> Path:
    """Make `path` a `kind` run folder, or refuse (NasgraphError) without writing anything.

    resume: the folder must already be a `kind` run (or not exist yet: nothing to resume is then a
    fresh start only if the caller allows it; see RunDir). replace: an existing `kind` folder is
    taken over (bench/compile --force). A folder holding only a marker and a spec snapshot never
    started (a failed first try) and is taken over without either flag.
    """
    assert kind in KINDS, kind
    path = Path(path)
    if path.is_symlink() and not path.exists():            # dangling, or a loop: mkdir would say "File exists"
        raise NasgraphError(f"{path} is a symbolic link to {os.readlink(path)}, which is no folder (missing, or a "
                            f"loop of links); choose a folder for --out (nothing was written)")
    if path.exists() and not path.is_dir():
        raise NasgraphError(f"{path} is a file, not a folder; choose a folder for --out (nothing was written)")
    if path.is_dir():
        entries = _entries(path)
        found = kind_of(path)
        if found is None and entries:
            raise NasgraphError(f"{path} is not empty and is not a nasgraph run folder (no {MARKER}); refusing to "
                                f"write into it; choose a new or empty folder (nothing was written)")
        if found is not None and found != kind:
            raise NasgraphError(f"{path} holds a {found} run, not a {kind} run: `{_COMMAND[kind]}` does not write "
                                f"into it; choose another folder (nothing was written)")
        if found == kind and not (resume or replace) and not entries <= UNSTARTED:
            hint = "pass --resume to continue it" if kind in ("search", "train") else "pass --force to replace it"
            raise NasgraphError(f"{path} already holds a {kind} run; {hint} or choose another --out "
                                f"(nothing was overwritten)")
        if found is not None and (path / MARKER).exists():
            return path
    elif resume:
        raise NasgraphError(f"{path}: nothing to resume (no such run folder)")
    marker = {"kind": kind, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "version": __version__}
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:   # a parent that is a file, no permission, a full disk
        raise NasgraphError(f"{path}: cannot create the run folder ({err.strerror or err})") from None
    atomic_write(path / MARKER, lambda f: f.write((json.dumps(marker) + "\n").encode("utf-8")))
    return path


def require(path: str | Path, kind: str, needs: str = "") -> Path:
    """A folder a command reads must be a `kind` run; NasgraphError naming what it is otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise NasgraphError(f"{path}: no such {kind} run folder" + (" (it is a file)" if path.exists() else ""))
    found = kind_of(path)
    if found != kind:
        what = f"a {found} run folder" if found else "not a nasgraph run folder"
        raise NasgraphError(f"{path}: {what}; expected a {kind} run{f' ({needs})' if needs else ''}")
    return path
