"""`nasgraph predict model.onnx INPUT`: label and class probabilities for each input text."""
from __future__ import annotations

import json
import sys

from nasgraph.textfmt import printable

NAME = "predict"
HELP = "classify a text, a file of lines or a TSV (first column) with an exported model"
ORDER = 8


def add_arguments(p) -> None:
    p.add_argument("model", help="an .onnx file written by `nasgraph export`")
    p.add_argument("input", nargs="?", help="a text, a file with one text per line, a .tsv (first column), or - for "
                                            "stdin (a missing file is an error, not a text)")
    p.add_argument("--text", help="classify this text as given, even if it looks like a file name")
    p.add_argument("--top-k", type=int, metavar="K", help="show the K most probable classes (default: all, "
                                                          "in class order)")
    p.add_argument("--provider", default="cpu", help="cpu | cuda (the provider really used is checked)")
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: one per core)")
    p.add_argument("--json", action="store_true", help="one JSON object per input line (text, label, probs, "
                                                       "truncated, top_k), then one summary object on stderr")


def _short(text: str, n: int = 60) -> str:
    text = " ".join(printable(text).split())
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
    if args.top_k is not None and args.top_k < 1:
        raise NasgraphError(f"--top-k must be >= 1, got {args.top_k}")
    predictor = Predictor(args.model, args.provider, threads=args.threads)
    inputs = Inputs([args.text], None, "text") if args.text is not None else read_inputs(args.input,
                                                                                         predictor.class_names)
    where = [i for i, t in enumerate(inputs.texts) if t.strip()]          # blank lines keep their place
    texts = [inputs.texts[i] for i in where]
    predictions = dict(zip(where, predictor.predict(texts)))
    truncated = dict(zip(where, predictor.truncated(texts)))
    targets = inputs.targets or [None] * len(inputs.texts)
    k = min(args.top_k or len(predictor.class_names), len(predictor.class_names))
    for i, (text, target) in enumerate(zip(inputs.texts, targets)):
        pred = predictions.get(i)
        if args.json:
            record = {"line": i + 1, "text": printable(text), "label": pred.label if pred else None,
                      "probs": pred.probs if pred else None, "truncated": truncated.get(i, False)}
            if args.top_k and pred:
                record["top_k"] = [{"label": c, "prob": p} for c, p in pred.top(k)]
            print(json.dumps(record | ({"target": target} if target is not None else {}), ensure_ascii=False))
        elif pred is None:
            print("-\t\t(blank line)")
        else:
            shown = pred.top(k) if args.top_k else pred.probs.items()
            mark = " [truncated]" if truncated[i] else ""
            print(f"{pred.label}\t{' '.join(f'{c}:{p:.3f}' for c, p in shown)}\t{_short(text)}{mark}")
    n_truncated = sum(truncated.values())
    summary = {"inputs": len(inputs.texts), "classified": len(where), "blank": len(inputs.texts) - len(where),
               "truncated": n_truncated, "max_len": predictor.max_len, "provider": predictor.provider}
    if n_truncated and not args.json:
        lines = ", ".join(str(i + 1) for i in sorted(i for i, t in truncated.items() if t)[:10])
        print(f"warning: {n_truncated} of {len(where)} input(s) had more than max_len {predictor.max_len} tokens and "
              f"were truncated: only their start was classified (line(s) {lines}{', ...' if n_truncated > 10 else ''})",
              file=sys.stderr)
    if inputs.targets:
        scored = [i for i in where if targets[i] is not None]
        hits = sum(predictions[i].label == targets[i] for i in scored)
        summary |= {"accuracy": hits / len(scored), "correct": hits, "scored": len(scored)}
        if not args.json:
            print(f"accuracy {hits / len(scored):.4f} ({hits}/{len(scored)}) against the TSV's second column; "
                  f"provider {predictor.provider}")
    if args.json:
        print(json.dumps({"summary": summary}), file=sys.stderr)
    return 0
