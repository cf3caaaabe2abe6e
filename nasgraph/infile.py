"""Input files a command reads whole: bounded (`/dev/zero` stops at the limit instead of filling memory) and
never blocking on a named pipe that nobody writes to (it would wait forever)."""
from __future__ import annotations

import errno
import os
import stat


def read_bounded(path: str | os.PathLike, limit: int) -> bytes:
    """At most `limit` + 1 bytes of `path` (the caller refuses a longer file). OSError as open/read raise it,
    and for a named pipe that has no writer (or gave nothing): ENODATA, "a named pipe with nothing to read"."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)   # opening a FIFO must not wait for a writer
    try:
        fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)
        chunks: list[bytes] = []
        size, waited = 0, False
        while size <= limit:
            try:
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            except BlockingIOError:                                 # a writer, no data yet: wait for it
                os.set_blocking(fd, True)
                waited = True
                continue
            if not chunk:
                if fifo and not chunks and not waited:
                    raise OSError(errno.ENODATA, "a named pipe with nothing to read (no writer)", str(path))
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
