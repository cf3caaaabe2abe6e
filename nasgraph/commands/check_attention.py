"""`nasgraph check-attention NAME [--plugin MODULE]`: the zoo's contract checks against one type."""
from __future__ import annotations

import json
import sys

from nasgraph.textfmt import table

NAME = "check-attention"
HELP = "run the attention contract (shapes, padding, causality, gradients, ONNX parity) on a type or plug-in"
ORDER = 11


def add_arguments(p) -> None:
    p.add_argument("name", help="a registered attention type (built-in, entry point or --plugin)")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="import this module (dotted name or .py file) first, e.g. my_package.my_attention "
                        "(repeatable)")
    p.add_argument("--no-onnx", dest="onnx", action="store_false", help="skip the ONNX export and parity check")
    p.add_argument("--json", action="store_true", help="print the results as one JSON object")


def run(args) -> int:
    from nasgraph import attention
    from nasgraph.attention.contract import CHECKS, run_checks
    from nasgraph.plugins import import_plugin

    for module in args.plugin:
        import_plugin(module)
    attention.get(args.name)  # an unknown name fails here, listing the valid ones
    checks = list(CHECKS)
    if args.onnx:
        from exporters.attention_check import ONNX_CHECK

        checks.append(ONNX_CHECK)
    docs = {c.name: c.doc for c in checks}
    live = sys.stderr.isatty() and not args.json  # progress on a terminal; the table says it all otherwise
    show = (lambda r: print(f"\r\033[K{r.status:4} {r.check} ({r.form})", end="", file=sys.stderr, flush=True)) if live else None
    results = run_checks(args.name, checks, on_result=show)
    failed = [r for r in results if r.status == "fail"]
    if live:
        print("\r\033[K", end="", file=sys.stderr)
    if args.json:
        cls = attention.get(args.name)
        print(json.dumps({"name": args.name, "module": cls.__module__, "ok": not failed,
                          "caps": vars(cls.caps), "results": [vars(r) for r in results]}, indent=1))
    else:
        rows = [[r.check, r.form, r.status.upper() if r.status == "fail" else r.status, docs[r.check],
                 r.detail] for r in results]
        print(table(rows, ["check", "form", "result", "what", "detail"]))
        counts = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
        verdict = "keeps the contract" if not failed else "BREAKS the contract"
        print(f"\nattention '{args.name}' {verdict}: {counts['pass']} passed, {counts['fail']} failed, "
              f"{counts['skip']} skipped (by its capability flags)")
    return 1 if failed else 0
