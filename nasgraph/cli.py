"""The `nasgraph` command: thin subcommands over library functions.

Each module in nasgraph/commands defines NAME, HELP, add_arguments(parser) and run(args) -> int;
they are discovered here, so a new command is one new file.
"""
from __future__ import annotations

from nasgraph.threads import shared_machine_defaults

shared_machine_defaults()  # before anything imports torch: OpenMP reads these once, when it loads

import argparse  # noqa: E402
import errno  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import pkgutil  # noqa: E402
import sys  # noqa: E402

from nasgraph import __version__  # noqa: E402
from nasgraph.errors import NasgraphError, one_line  # noqa: E402


def _commands():
    import nasgraph.commands as pkg

    mods = [importlib.import_module(f"{pkg.__name__}.{m.name}") for m in pkgutil.iter_modules(pkg.__path__)
            if not m.name.startswith("_")]
    return sorted((m for m in mods if hasattr(m, "NAME")), key=lambda m: m.ORDER if hasattr(m, "ORDER") else 99)


class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes as one line (`nasgraph bench: error: argument --seq: ...`), exit 2; --help has the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="nasgraph", description="Which attention should this Transformer use, per layer or per head? "
        "Search it, derive it, train it, export it to a verified ONNX model and measure its latency.")
    parser.add_argument("--version", action="version", version=f"nasgraph {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for mod in _commands():
        p = sub.add_parser(mod.NAME, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        _utf8_outputs(args)
        return int(args._run(args) or 0)
    except NasgraphError as err:
        print(f"nasgraph {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"nasgraph {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `nasgraph ... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
    except OSError as err:   # `nasgraph ... > /dev/full`, a full disk or quota under a run folder
        if err.errno not in _CANNOT_WRITE:
            raise
        _stdout_to_devnull()
        print(f"nasgraph {args.command}: error: cannot write {err.filename or 'the output (stdout or a file)'}: "
              f"{err.strerror}", file=sys.stderr)
        return 2


def _utf8_outputs(args: argparse.Namespace) -> None:
    """An output path (--out, -o) must be UTF-8: reports, plots and ONNX metadata hold it as text. A name with
    other bytes (argv's lone surrogates) is refused before anything is written."""
    for dest, flag in (("out", "--out"), ("output", "-o")):
        value = getattr(args, dest, None)
        if not value:
            continue
        full = os.path.abspath(os.fspath(value))
        try:
            full.encode("utf-8")
        except UnicodeEncodeError as err:
            shown = os.fsencode(value).decode("utf-8", "backslashreplace")
            raise NasgraphError(f"{flag} {shown}: the path is not UTF-8 (byte 0x{ord(full[err.start]) & 0xFF:02x}); "
                                f"reports and ONNX metadata hold it as text: choose a UTF-8 name (nothing was "
                                f"written)") from None


_CANNOT_WRITE = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO}


def _stdout_to_devnull() -> None:
    """Point fd 1 at /dev/null, so the interpreter's final flush of what stdout still holds cannot fail again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
