"""`nasgraph export RUN -o model.onnx` or `nasgraph export derived.yaml --checkpoint CKPT -o model.onnx`."""
from __future__ import annotations

import json
import math
from pathlib import Path

from nasgraph.commands._common import add_spec_overrides
from nasgraph.errors import NasgraphError

NAME = "export"
HELP = "export a trained model to ONNX (tokens -> logits), verified against PyTorch on real task inputs"
ORDER = 7


def add_arguments(p) -> None:
    p.add_argument("source", type=Path, help="a train run folder, or a spec YAML (then --checkpoint)")
    p.add_argument("-o", "--output", type=Path, required=True, help="the .onnx file to write")
    p.add_argument("--checkpoint", type=Path, help="weights for a spec source (a train run's checkpoints/best.pt)")
    p.add_argument("--weights", choices=["best", "last"], default="best",
                   help="for a run folder: the best validation checkpoint (default) or the last one")
    p.add_argument("--atol", type=float, help="parity tolerance (default: the spec's export.atol, 1e-4)")
    p.add_argument("--force", action="store_true", help="replace --output (and its .unpadded.onnx) if they exist")
    from exporters.quantize_schemes import SCHEMES

    p.add_argument("--quantize", choices=list(SCHEMES), metavar="SCHEME",
                   help="int8 quantization, kept only if the test accuracy holds (see --max-accuracy-drop): "
                        "int8 (dynamic, the linear layers; the fastest measured), int8-per-channel (one weight "
                        "scale per output channel), int8-static (activation ranges calibrated on the task's "
                        "train split), int8-attention (int8 plus attention's activation products)")
    p.add_argument("--max-accuracy-drop", type=float, default=1.0, metavar="POINTS",
                   help="refuse a --quantize export whose test accuracy drops by more (percentage points; default 1)")
    p.add_argument("--no-contrib-ops", dest="contrib_ops", action="store_false",
                   help="standard ONNX ops only (no com.microsoft fused attention; runs beyond ONNX Runtime, slower)")
    p.add_argument("--decode", choices=["auto", "always", "never"], default="auto",
                   help="prefill/step graphs for token-by-token generation (docs/decode_format.md): auto (default) "
                        "writes them for a language model whose attention types all decode")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    add_spec_overrides(p)


def run(args) -> int:
    from exporters.fused_attention import attention_kernels
    from exporters.runtime import read_metadata
    from nasgraph.api import export

    if args.output.exists() and not args.force:
        raise NasgraphError(f"{args.output} already exists; pass --force to replace it (nothing was written)")
    if args.atol is not None and not 0 < args.atol < math.inf:                    # NaN fails too
        raise NasgraphError(f"--atol must be a finite number > 0, got {args.atol}")
    if not 0 <= args.max_accuracy_drop < math.inf:
        raise NasgraphError(f"--max-accuracy-drop must be a finite number >= 0 points, got {args.max_accuracy_drop}")
    result = export(args.source, args.output, checkpoint=args.checkpoint, overrides=args.overrides, atol=args.atol,
                    overwrite=args.force, weights=args.weights, quantize=args.quantize,
                    max_drop=args.max_accuracy_drop, contrib_ops=args.contrib_ops, progress=args.progress,
                    decode=args.decode)
    meta = result.metadata
    n = len(json.loads(meta["nasgraph.class_names"]))
    outputs = f"next-token logits over {n} tokens" if meta.get("nasgraph.output") == "token" else f"{n} classes"
    print(f"wrote {result.path} ({meta['nasgraph.name']}, max_len {meta['nasgraph.max_len']}, {outputs})")
    if "nasgraph.checkpoint" in meta:
        print(f"weights: {meta['nasgraph.checkpoint']}, {meta['nasgraph.checkpoint_path']}")
    print(f"{result.report.summary()} on {meta['nasgraph.parity_inputs']}")
    if result.unpadded_path is not None and result.unpadded_report is not None:
        u_meta = read_metadata(result.unpadded_path)
        print(f"wrote {result.unpadded_path} (no padding mask: batches without padding; predict picks it)")
        print(f"{result.unpadded_report.summary()} on {u_meta['nasgraph.parity_inputs']}")
        kernels = attention_kernels(result.unpadded_path)
        for scope, kernel in attention_kernels(result.path).items():
            print(f"attention {scope}: padded {kernel}; unpadded {kernels.get(scope, '?')}")
    if result.decode_paths is not None and result.decode_report is not None:
        prefill, step = result.decode_paths
        print(f"wrote {prefill} and {step.name} (stateful generation: `nasgraph generate {result.path}`)")
        print(f"{result.decode_report.summary()}")
    elif result.decode_skipped:
        print(f"no prefill/step graphs: {result.decode_skipped}")
    if result.quantization is not None:
        print(result.quantization.summary())
    return 0
