"""`nasgraph compile spec.yaml`: validate, build the op graph, print its size and cost."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.outfile import atomic_write_text
from nasgraph.textfmt import count, human, table

NAME = "compile"
HELP = "validate a spec, build its op graph and print nodes, parameters, FLOPs and search-space size"
ORDER = 1


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, e.g. --set model.n_layers=2 (repeatable)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--out", type=Path, help="write graph.json, graph.dot (+ graph.png), summary.{json,md} in this "
                                            "folder (new, empty, or an earlier compile --out with --force)")
    p.add_argument("--force", action="store_true",
                   help="do it anyway: replace the artifacts of an earlier compile --out, and build a model past "
                        "the machine's memory or nasgraph's size limits (docs/spec.md, Limits)")


def render(summary) -> str:
    s = summary
    lines = [f"spec {s.name}: {s.nodes} nodes, {s.edges} edges, {human(s.params_total)} parameters "
             f"({human(s.params_shared)} shared), FLOPs at T={s.seq_len} (batch 1, 1 multiply-add = 1 FLOP)", ""]
    rows = []
    for cp in s.choice_points:
        for label in cp.candidates:
            rows.append([cp.node, cp.granularity, label, human(cp.params[label]), human(cp.flops[label]),
                         human(cp.head_flops[label]) if cp.head_flops else "-"])
    if rows:
        lines += [table(rows, ["choice point", "granularity", "candidate", "params", "FLOPs", "FLOPs/head"]), ""]
    else:
        lines += ["no choice points: a fixed architecture", ""]
    lines += [f"shared (non-choice) FLOPs: {human(s.flops_shared)}",
              f"smallest architecture: {human(s.flops_min)} FLOPs; largest: {human(s.flops_max)} FLOPs",
              f"search space: {count(s.space_size)} architectures"
              + (" (" + " x ".join(count(cp.n_choices) for cp in s.choice_points) + ")" if len(s.choice_points) > 1 else "")]
    return "\n".join(lines)


def run(args) -> int:
    from nasgraph.api import compile

    compiled = compile(args.spec, args.overrides, out=args.out, overwrite=args.force, force=args.force)
    text = render(compiled.summary) + (render_elastic(compiled.elastic) if compiled.elastic else "")
    if args.out:
        compiled.written.append(args.out / "summary.md")
        atomic_write_text(compiled.written[-1], f"# {compiled.summary.name}\n\n```\n{text}\n```\n")
    print(json.dumps(compiled.to_json(), indent=1) if args.json else text)
    if args.out and not args.json:
        print("wrote " + ", ".join(str(w) for w in compiled.written))
    return 0


def render_elastic(e: dict) -> str:
    """The elastic space: its dimensions, its size with the attention choices, and its two ends."""
    sp = e["space"]
    widths = sorted({m for layer in sp["ffn_mult"] for m in layer})
    listed = lambda ms: "[" + ", ".join(f"{m:g}" for m in ms) + "]"  # noqa: E731
    lines = ["", "", f"elastic dimensions: d_model {sp['d_model']}, n_heads {sp['n_heads']}, "
             f"n_layers {sp['n_layers']}, "
             f"ffn.mult per layer {listed(widths)}; the table above is the largest sub-network (the supernet)",
             f"elastic search space: {count(e['space_size'])} sub-networks (with the per-layer attention choices)"]
    for end in ("smallest", "largest"):
        s = e[end]["subnet"]
        lines.append(f"{end} sub-network: {human(e[end]['params'])} parameters, {human(e[end]['flops'])} FLOPs "
                     f"(d_model {s['d_model']}, {s['n_heads']} heads, {s['n_layers']} layer(s), ffn.mult "
                     f"{listed(s['ffn_mult'])})")
    return "\n".join(lines)
