"""`nasgraph schema`: print the spec's JSON Schema (for editors and validators)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from nasgraph.spec.jsonschema import spec_json_schema

NAME = "schema"
HELP = "print the JSON Schema of spec files"
ORDER = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (0: one line)")


def run(args: argparse.Namespace) -> int:
    indent = args.indent if args.indent > 0 else None
    try:
        sys.stdout.write(json.dumps(spec_json_schema(), indent=indent) + "\n")
        sys.stdout.flush()
    except BrokenPipeError:  # `nasgraph schema | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
