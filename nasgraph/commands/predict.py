"""`nasgraph predict model.onnx INPUT`: label and class probabilities for each input text."""
from __future__ import annotations

import json
import sys

NAME = "predict"
HELP = "classify a text, a file of lines or a TSV (first column) with an exported model"
ORDER = 8


def add_arguments(p) -> None:
    p.add_argument("model", help="an .onnx file written by `nasgraph export`")
    p.add_argument("input", nargs="?", help="a text, a file with one text per line, a .tsv (first column), or - for "
                                            "stdin (a missing file is an error, not a text)")
    p.add_argument("--text", help="classify this text as given, even if it looks like a file name")
    p.add_argument("--provider", default="cpu", help="cpu | cuda (the provider really used is checked)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: one per core)")
    p.add_argument("--json", action="store_true", help="one JSON object per line: text, label, probs")


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def run(args) -> int:
    from exporters.predict import Inputs, Predictor, read_inputs
    from nasgraph.errors import NasgraphError

    if args.input is None and args.text is None:
        raise NasgraphError("nothing to classify: give an INPUT (a text, a file or -) or --text TEXT")
    if args.input is not None and args.text is not None:
        raise NasgraphError(f"give an INPUT or --text, not both (got {args.input!r} and --text)")
    if args.threads is not None and args.threads < 1:
        raise NasgraphError(f"--threads must be >= 1, got {args.threads}")
    predictor = Predictor(args.model, args.provider, threads=args.threads)
    inputs = Inputs([args.text], None, "text") if args.text is not None else read_inputs(args.input,
                                                                                         predictor.class_names)
    predictions = predictor.predict(inputs.texts)
    targets = inputs.targets or [None] * len(predictions)
    for text, (label, probs), target in zip(inputs.texts, predictions, targets):
        if args.json:
            record = {"text": text, "label": label, "probs": probs}
            print(json.dumps(record | ({"target": target} if target is not None else {}), ensure_ascii=False))
        else:
            shown = " ".join(f"{c}:{p:.3f}" for c, p in probs.items())
            print(f"{label}\t{shown}\t{_short(text)}")
    if inputs.targets:
        hits = sum(p.label == t for p, t in zip(predictions, inputs.targets))
        print(f"accuracy {hits / len(predictions):.4f} ({hits}/{len(predictions)}) against the TSV's second "
              f"column; provider {predictor.provider}", file=sys.stderr if args.json else sys.stdout)
    return 0
