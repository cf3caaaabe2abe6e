"""Output files a command replaces atomically (write beside, then rename): never onto a device, a pipe
or a socket (a rename would put a plain file where /dev/null was), and a folder that takes no file
is one clear line, not an OSError from deep inside a write."""
from __future__ import annotations

import os
import stat
from pathlib import Path

from nasgraph.errors import NasgraphError

_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a named pipe"),
          (stat.S_ISSOCK, "a socket"))


def refuse_special(path: str | os.PathLike, error=NasgraphError) -> None:
    """`error` when `path` exists and is neither a regular file nor a folder (the callers refuse folders)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return                                                      # absent (or unreadable: the write says so)
    kind = next((name for test, name in _KINDS if test(mode)), None)
    if kind:
        raise error(f"{path} is {kind}, not a regular file; give a file path (nothing was written)")


def cannot_write(path: str | os.PathLike, err: OSError, error=NasgraphError) -> NasgraphError:
    """The one-line error for an OSError while writing `path` (a read-only or special folder, a full disk)."""
    return error(f"cannot write {path}: {err.strerror or type(err).__name__} (nothing was written)")
