"""Write-then-move helpers: an export is staged next to its target and moved into place atomically."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from exporters.errors import ExportError
from nasgraph.outfile import cannot_write, refuse_special


def data_file(path: Path) -> Path:
    """The external-data sibling of an .onnx file (`model.onnx` -> `model.onnx.data`)."""
    return path.with_name(path.name + ".data")


def check_target(path: str | os.PathLike, overwrite: bool) -> Path:
    """Resolve `path`; ExportError if it exists and overwrite is False, or if its folder is missing."""
    dst = Path(path).expanduser().resolve()
    if dst.is_dir():
        raise ExportError(f"{dst} is a folder; give a file name (e.g. {dst / 'model.onnx'}); nothing was written")
    refuse_special(dst, ExportError)                   # with overwrite, a rename would replace /dev/null itself
    if dst.exists() and not overwrite:
        raise ExportError(f"{dst} already exists; pass overwrite=True to replace it")
    if not dst.parent.is_dir():
        raise ExportError(f"cannot write {dst}: folder {dst.parent} does not exist")
    return dst


@contextlib.contextmanager
def staging_dir(dst: Path) -> Iterator[Path]:
    """A hidden temporary folder beside `dst` (same filesystem, so the final rename is atomic)."""
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent))
    except OSError as err:                             # a read-only folder, /proc, a full disk
        raise cannot_write(dst, err, ExportError) from None
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _place(src: Path, dst: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(src, dst)
        return
    try:
        os.link(src, dst)  # atomic and fails if dst exists: no window where another writer is clobbered
    except FileExistsError:
        raise ExportError(f"{dst} already exists; pass overwrite=True to replace it") from None
    except OSError:  # filesystems without hard links
        if dst.exists():
            raise ExportError(f"{dst} already exists; pass overwrite=True to replace it") from None
        os.replace(src, dst)
        return
    src.unlink()


def move_into_place(src: Path, dst: Path, overwrite: bool) -> Path:
    """Move a staged .onnx (and its .data sibling, if any) to `dst`; returns dst.

    The data file moves first, so a reader never sees an .onnx whose weights are missing. A stale
    .data beside a replaced file is removed when the new model is self-contained.
    """
    src_data, dst_data = data_file(src), data_file(dst)
    has_data = src_data.exists()
    if has_data:
        _place(src_data, dst_data, overwrite)
    try:
        _place(src, dst, overwrite)
    except ExportError:
        if has_data:
            dst_data.unlink(missing_ok=True)  # the one we just placed: leave nothing half-written
        raise
    if not has_data and overwrite and dst_data.exists():
        dst_data.unlink()
    return dst


def move_all_into_place(pairs: list[tuple[Path, Path]], overwrite: bool) -> list[Path]:
    """Move several staged files together, in order (put the main file last: a reader who sees it
    sees its companions); if one cannot be placed, the ones placed before it are removed again."""
    placed: list[Path] = []
    try:
        for src, dst in pairs:
            placed.append(move_into_place(src, dst, overwrite))
    except ExportError:
        for dst in placed:
            dst.unlink(missing_ok=True)
            data_file(dst).unlink(missing_ok=True)
        raise
    return placed
