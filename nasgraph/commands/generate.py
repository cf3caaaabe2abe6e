"""`nasgraph generate RUN --prompt TEXT`: continue a text with a trained causal LM (run folder or .onnx)."""
from __future__ import annotations

import json
from pathlib import Path

NAME = "generate"
HELP = "continue a prompt with a trained language model (a train run folder, or an exported .onnx)"
ORDER = 9


def add_arguments(p) -> None:
    p.add_argument("model", help="a `nasgraph train` run folder of an lm/mqar task, its exported .onnx "
                                 "(with model.prefill.onnx/model.step.onnx beside it: stateful decoding), "
                                 "or a folder holding the prefill/step graphs")
    p.add_argument("--prompt", default="", help="the text to continue (default: empty, start from <cls>)")
    p.add_argument("--max-new-tokens", type=int, default=100, help="tokens to generate (default 100)")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; > 0: sample")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--provider", default="cpu", help=".onnx only: cpu | cuda (checked)")
    p.add_argument("--threads", type=int, help="intra-op threads (torch or onnxruntime)")
    p.add_argument("--full-forward", action="store_true",
                   help=".onnx only: rerun the whole context per token instead of the exported prefill/step graphs")
    p.add_argument("--json", action="store_true", help="print a JSON object: prompt, continuation, token ids")


def eager_model(run_dir: str | Path, threads: int | None = None):
    """(model, tokenizer, max_len) of a train run folder's last checkpoint, in eager PyTorch: a Decoder
    (prefill once, then one position per token) when every attention layer has a decoding form, else a
    scorer that runs the full forward per token."""
    import torch

    from nasgraph import tasks
    from nasgraph.decoding import EagerDecoder
    from nasgraph.errors import NasgraphError
    from nasgraph.tasks.tokenize import Tokenizer
    from nasgraph.training.run import load_trained

    if threads:
        torch.set_num_threads(threads)
    doc, model = load_trained(run_dir)
    config = tasks.parse_task(doc.spec.task)
    if tasks.get(config.kind).output != "token":
        raise NasgraphError(f"{run_dir}: task '{config.kind}' is a classification task, not a language model; "
                            f"use `nasgraph eval` or export it and `nasgraph predict`")
    recorded = Path(run_dir) / "task.json"
    tok = (Tokenizer.from_dict(json.loads(recorded.read_text())["tokenizer"]) if recorded.exists()
           else Tokenizer.from_dict(tasks.load_task(config).tokenizer))

    @torch.no_grad()
    def scorer(ids):
        return model(torch.from_numpy(ids)[None])[0].numpy()           # (T, V)

    try:
        return EagerDecoder(model), tok, int(config.max_len)
    except NasgraphError:                                              # a type without a decoding form
        return scorer, tok, int(config.max_len)


def printable(text: str) -> str:
    """Bytes that are not valid UTF-8 (a byte model may emit any) shown as U+FFFD."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def run(args) -> int:
    from exporters.decode_runtime import has_decode_graphs
    from nasgraph.generation import generate

    options = dict(temperature=args.temperature, top_k=args.top_k, seed=args.seed)
    model = Path(args.model)
    if has_decode_graphs(model) and not (model / "spec.yaml").exists() and not args.full_forward:
        from exporters.decode_runtime import OrtDecoder

        decoder = OrtDecoder(model, args.threads, args.provider)     # prefill once, then a step per token
        tok = decoder.tokenizer
        new = decoder.generate(tok.ids(args.prompt), args.max_new_tokens, **options)
    else:
        if model.is_dir():
            scorer, tok, max_len = eager_model(model, args.threads)
        else:
            from exporters.generate import OnnxLM

            lm = OnnxLM(model, args.provider, threads=args.threads)
            scorer, tok, max_len = lm.scorer, lm.tokenizer, lm.max_len
        new = generate(scorer, tok.ids(args.prompt), args.max_new_tokens, max_len, **options)
    continuation = printable(tok.decode(new))
    if args.json:
        print(json.dumps({"prompt": args.prompt, "continuation": continuation, "ids": new}, ensure_ascii=False))
    else:
        sep = " " if tok.kind == "symbols" and args.prompt.strip() and continuation else ""
        print(args.prompt + sep + continuation)
    return 0
