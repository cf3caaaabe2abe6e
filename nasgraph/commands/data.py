"""`nasgraph data listops ...`: write a generated data set to a file, in its benchmark's own format."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nasgraph.errors import NasgraphError

NAME = "data"
HELP = "generate a data set file (ListOps in LRA's TSV format)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dataset", required=True, metavar="DATASET")
    p = sub.add_parser("listops", help="LRA ListOps expressions, written as LRA's Source<TAB>Target TSV",
                       description="Generate unique ListOps expressions with LRA's generator (seeded) and "
                                   "write them as LRA's TSV (header Source<TAB>Target).")
    p.add_argument("--n", type=int, required=True, help="number of unique examples")
    p.add_argument("--min-len", type=int, default=500, help="keep length > MIN_LEN (LRA: 500)")
    p.add_argument("--max-len", type=int, default=2000, help="keep length < MAX_LEN (LRA: 2000)")
    p.add_argument("--max-depth", type=int, default=10, help="maximum tree depth (LRA: 10)")
    p.add_argument("--max-args", type=int, default=10, help="maximum arguments per operator (LRA: 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="the .tsv file to write")
    p.add_argument("--force", action="store_true", help="overwrite OUTPUT if it exists")


def run(args: argparse.Namespace) -> int:
    from nasgraph.outfile import atomic_write, cannot_write, is_stdout, streams_in_place
    from nasgraph.tasks.listops import generate, write_tsv

    out = Path(args.output)
    if out.is_dir():
        raise NasgraphError(f"{out} is a folder; give a file name for --output (nothing was written)")
    if out.exists() and not args.force and not streams_in_place(out):   # /dev/stdout is no file to keep
        raise NasgraphError(f"{out} exists; pass --force to overwrite it")
    if out.parent and not out.parent.is_dir():
        raise NasgraphError(f"no such folder: {out.parent}")
    for flag, value, low in (("--n", args.n, 1), ("--max-depth", args.max_depth, 1),
                             ("--max-args", args.max_args, 2), ("--min-len", args.min_len, 0)):
        if value < low:
            raise NasgraphError(f"{flag} must be >= {low}, got {value}")
    start = time.perf_counter()
    examples = generate(args.n, min_len=args.min_len, max_len=args.max_len, max_depth=args.max_depth,
                        max_args=args.max_args, seed=args.seed)
    to_stdout = is_stdout(out)
    try:
        if to_stdout:                                  # one stream: the file offset is stdout's own
            write_tsv(sys.stdout.buffer, examples)
            sys.stdout.flush()
        elif streams_in_place(out):                    # a device or a pipe: written in place
            write_tsv(out, examples)
        else:
            atomic_write(out, lambda f: write_tsv(f, examples))   # never a torn file where the user's was
    except OSError as err:                             # a read-only folder, /proc, a full disk
        raise cannot_write(out, err) from None
    lengths = [len(tokens) for tokens, _ in examples]
    print(f"wrote {len(examples)} examples to {out} (lengths {min(lengths)}-{max(lengths)}, "
          f"mean {sum(lengths) / len(lengths):.1f}; {time.perf_counter() - start:.1f} s)",
          file=sys.stderr if to_stdout else sys.stdout)   # the TSV on stdout stays a TSV
    return 0
