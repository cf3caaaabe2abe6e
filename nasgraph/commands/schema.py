"""`nasgraph schema`: print the spec's JSON Schema (for editors and validators)."""
from __future__ import annotations

import argparse
import json

from nasgraph.spec.jsonschema import spec_json_schema

NAME = "schema"
HELP = "print the JSON Schema of spec files"
ORDER = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (0: one line)")


def run(args: argparse.Namespace) -> int:
    indent = args.indent if args.indent > 0 else None
    print(json.dumps(spec_json_schema(), indent=indent))
    return 0
