"""User-facing errors: the CLI prints them as one line and exits with code 2."""
from __future__ import annotations

import re

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
MAX_MESSAGE = 2000  # characters of one error line


def one_line(text: str) -> str:
    """`text` as one printable line: control characters and lone surrogates escaped, length capped."""
    text = _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"),
                            str(text))
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 25] + f"... ({len(text):,} characters)"


class NasgraphError(Exception):
    """An error caused by user input (a spec, a file, an option). Printed without a traceback."""

    exit_code = 2


class ConfigError(NasgraphError, ValueError):
    """A bad option for a registered component; the message names the bad value and the valid choices.

    `key` is the offending option's path below the component (e.g. "window"), so the spec layer can
    point at the exact line.
    """

    def __init__(self, message: str, key: str = ""):
        self.key = key
        super().__init__(message)


class SpecError(NasgraphError):
    """A problem at a place in a spec file: `file:line:col: key.path: message`."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 col: int | None = None, path: str = ""):
        self.message, self.file, self.line, self.col, self.path = message, file, line, col, path
        super().__init__(self.format())

    def format(self) -> str:
        where = self.file or "<spec>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        key = f" {self.path}:" if self.path else ""
        return one_line(f"{where}:{key} {self.message}")


class SequenceTooLongError(NasgraphError, ValueError):
    """A sequence longer than a bounded op's max_len."""
