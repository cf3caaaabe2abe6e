"""`nasgraph export RUN -o model.onnx` or `nasgraph export derived.yaml --checkpoint CKPT -o model.onnx`."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.commands._common import add_spec_overrides
from nasgraph.errors import NasgraphError

NAME = "export"
HELP = "export a trained model to ONNX (tokens -> logits), verified against PyTorch on real task inputs"
ORDER = 7


def add_arguments(p) -> None:
    p.add_argument("source", type=Path, help="a train run folder, or a spec YAML (then --checkpoint)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--checkpoint", type=Path, help="weights for a spec source (a train run's checkpoints/last.pt)")
    p.add_argument("--atol", type=float, help="parity tolerance (default: the spec's export.atol, 1e-4)")
    p.add_argument("--force", action="store_true", help="replace --output if it exists")
    add_spec_overrides(p)


def run(args) -> int:
    from nasgraph.api import export

    if args.output.exists() and not args.force:
        raise NasgraphError(f"{args.output} already exists; pass --force to replace it (nothing was written)")
    if args.atol is not None and args.atol <= 0:
        raise NasgraphError(f"--atol must be > 0, got {args.atol}")
    result = export(args.source, args.output, checkpoint=args.checkpoint, overrides=args.overrides, atol=args.atol,
                    overwrite=args.force)
    meta = result.metadata
    n = len(json.loads(meta["nasgraph.class_names"]))
    outputs = f"next-token logits over {n} tokens" if meta.get("nasgraph.output") == "token" else f"{n} classes"
    print(f"wrote {result.path} ({meta['nasgraph.name']}, max_len {meta['nasgraph.max_len']}, {outputs})")
    print(f"{result.report.summary()} on {meta['nasgraph.parity_inputs']}")
    return 0
