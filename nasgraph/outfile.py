"""Output files a command replaces atomically (write beside, then rename): never onto a device, a pipe
or a socket (a rename would put a plain file where /dev/null was), and a folder that takes no file
is one clear line, not an OSError from deep inside a write."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import sys
from pathlib import Path
from typing import BinaryIO, Callable

from nasgraph.errors import NasgraphError
from nasgraph.textfmt import printable

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"))


def stream_name(path: str | os.PathLike) -> bool:
    """A name under /dev or /proc (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`), but not the files of the
    /dev/shm scratch folder, which are plain files a run may rewrite."""
    p = os.path.abspath(path)
    return p.startswith(("/dev/", "/proc/")) and not p.startswith("/dev/shm/")


def refuse_special(path: str | os.PathLike, error=NasgraphError) -> None:
    """`error` when `path` exists and is neither a regular file nor a folder (the callers refuse folders), or is
    a name under /dev or /proc (`/dev/stdout > file` is a regular file, but a rename would replace the link)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return                                                      # absent (or unreadable: the write says so)
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind is None and stream_name(path):
        kind = "a stream or device name (under /dev or /proc)"
    if kind:
        raise error(f"{path} is {kind}, not a regular file; give a file path (nothing was written)")


def streams_in_place(path: str | os.PathLike) -> bool:
    """True for an output written in place, never renamed over: a device, pipe or socket, or a name under /dev
    or /proc (`-o /dev/stdout`)."""
    p = os.path.abspath(path)
    return stream_name(p) or (os.path.exists(p) and not os.path.isfile(p) and not os.path.isdir(p))


def is_stdout(path: str | os.PathLike) -> bool:
    """True when `path` opens this process's stdout (/dev/stdout, /dev/fd/1, a file that stdout is redirected to)."""
    try:
        return os.path.samestat(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError, AttributeError):                    # no such file, stdout closed or replaced
        return False


def cannot_write(path: str | os.PathLike, err: OSError, error=NasgraphError) -> NasgraphError:
    """The one-line error for an OSError while writing `path` (a read-only or special folder, a full disk)."""
    return error(f"cannot write {path}: {err.strerror or type(err).__name__} (nothing was written)")


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], error=NasgraphError) -> None:
    """Write `path` as `write(binary file)` fills it, atomically: a hidden `.NAME.<random>.tmp` beside it, fsynced,
    then renamed over it (keeping the replaced file's permissions), so a crash, kill or Ctrl-C never leaves a torn
    file (a kill can leave the hidden one; run folders remove `.*.tmp` on open). A device, pipe or socket is
    refused; an OSError is `cannot_write`; what `write` raises otherwise passes through, nothing written."""
    refuse_special(path, error)                                     # a rename would replace /dev/null itself
    path = Path(os.path.realpath(path)) if os.path.islink(path) else Path(path)   # a link stays, its file is new
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(tmp, "xb")                                        # a new file; the umask's mode
    except OSError as err:                                          # a read-only folder, /proc, a full disk
        raise cannot_write(path, err, error) from None
    try:
        with fh:
            with contextlib.suppress(OSError):
                os.fchmod(fh.fileno(), stat.S_IMODE(os.stat(path).st_mode))   # absent: the umask's mode
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise cannot_write(path, err, error) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, error=NasgraphError) -> None:
    """A report or spec as UTF-8 via `atomic_write`; a path with bytes that are not UTF-8 (a folder name in the
    text) shows as U+FFFD instead of failing the whole write."""
    atomic_write(path, lambda f: f.write(printable(text).encode("utf-8")), error)
