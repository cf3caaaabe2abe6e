"""Arguments shared by several commands."""
from __future__ import annotations


def add_spec_overrides(p) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, e.g. --set train.steps=200 (repeatable)")


def add_json(p, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as one JSON object (and nothing else on stdout)")


def print_json(data: dict) -> None:
    import json

    print(json.dumps(data, indent=1, default=str))


def add_run_options(p) -> None:
    p.add_argument("--out", required=True, help="run folder: new or empty (refused if it holds anything else)")
    p.add_argument("--resume", action="store_true", help="continue a killed run in --out (same spec, else refused)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    p.add_argument("--force", action="store_true",
                   help="build a model past the machine's memory or nasgraph's size limits (docs/spec.md, Limits)")


def device_name(text: str) -> str:
    """argparse type of --device: auto, cpu, cuda or cuda:N."""
    import argparse

    from nasgraph.spec.schema import check_device

    try:
        return check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_device(p) -> None:
    p.add_argument("--device", type=device_name, default=None,
                   help="auto | cpu | cuda | cuda:N: where to compute (default: the spec's train.device; auto: the "
                        "GPU when there is one, else the CPU)")
