"""`nasgraph generate RUN --prompt TEXT`: continue a text with a trained causal LM (run folder or .onnx).

The text streams to stdout token by token, so a long generation shows its progress and Ctrl-C keeps
what was written (exit 130, a note on stderr): the bytes unchanged when piped, control bytes escaped
(\x1b) on a terminal. Past max_len the context window slides (<cls> plus the latest max_len - 1 tokens,
as in training), so any --max-new-tokens runs, in bounded memory; --json holds every id until the end
and so takes at most MAX_JSON_TOKENS.
"""
from __future__ import annotations

import codecs
import json
import sys
from pathlib import Path

from nasgraph.textfmt import json_safe, printable, terminal_safe

NAME = "generate"
HELP = "continue a prompt with a trained language model (a train run folder, or an exported .onnx)"
ORDER = 9
PROVIDERS = ("cpu", "cuda")
MAX_JSON_TOKENS = 10_000_000      # --json keeps every id in memory (about 100 MB at this count)


def add_arguments(p) -> None:
    p.add_argument("model", help="a `nasgraph train` run folder of an lm/mqar task, its exported .onnx "
                                 "(with model.prefill.onnx/model.step.onnx beside it: stateful decoding), "
                                 "or a folder holding the prefill/step graphs")
    p.add_argument("--prompt", default="", help="the text to continue (default: empty, start from <cls>)")
    p.add_argument("--max-new-tokens", type=int, default=100,
                   help="tokens to generate (default 100); past max_len the context window slides; the text "
                        "streams, Ctrl-C stops and keeps it")
    p.add_argument("--temperature", type=float, default=0.0, help="0 (default): greedy; > 0: sample")
    p.add_argument("--top-k", type=int, help="sample among the k most likely tokens only")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument("--provider", default="cpu", help="cpu | cuda: ONNX Runtime's provider for an .onnx, torch's "
                                                     "device for a run folder (checked: an unavailable one is an error)")
    p.add_argument("--threads", type=int, help="intra-op threads (torch or onnxruntime), >= 1")
    p.add_argument("--full-forward", action="store_true",
                   help="rerun the whole context per token instead of prefill once + a step per token (the "
                        "exported prefill/step graphs, or eager decoding for a run folder)")
    p.add_argument("--json", action="store_true", help="print a JSON object at the end: prompt, continuation, "
                                                       "token ids (at most 10,000,000 tokens)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="--json: no progress bar on stderr")


def torch_device(provider: str):
    """The torch device of `--provider` for a run folder; an unavailable one is a NasgraphError."""
    import torch

    from nasgraph.errors import NasgraphError

    if provider not in PROVIDERS:
        raise NasgraphError(f"unknown provider '{provider}'; valid: {', '.join(PROVIDERS)}")
    if provider == "cuda" and not torch.cuda.is_available():
        raise NasgraphError("--provider cuda: this torch sees no CUDA device (torch.cuda.is_available() is False; "
                            f"torch {torch.__version__}); use --provider cpu")
    return torch.device(provider)


def eager_model(run_dir: str | Path, threads: int | None = None, provider: str = "cpu", full_forward: bool = False):
    """(model, tokenizer, max_len) of a train run folder's last checkpoint, in eager PyTorch on `provider`'s
    device: a Decoder (prefill once, then one position per token) when every attention layer has a
    decoding form and not `full_forward`, else a scorer that runs the full forward per token."""
    import torch

    from nasgraph import tasks
    from nasgraph.decoding import EagerDecoder
    from nasgraph.errors import NasgraphError
    from nasgraph.tasks.tokenize import Tokenizer
    from nasgraph.training.run import load_trained

    device = torch_device(provider)
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
    model.to(device)

    @torch.no_grad()
    def scorer(ids):
        return model(torch.from_numpy(ids)[None].to(device))[0].float().cpu().numpy()   # (T, V)

    if full_forward:
        return scorer, tok, int(config.max_len)
    try:
        return EagerDecoder(model), tok, int(config.max_len)
    except NasgraphError:                                              # a type without a decoding form
        return scorer, tok, int(config.max_len)


def open_model(args):
    """(Scorer or Decoder, tokenizer, max_len) for args.model: ORT prefill/step graphs, a run folder, an .onnx."""
    from exporters.decode_runtime import has_decode_graphs
    from nasgraph.errors import NasgraphError

    model = Path(args.model)
    if not model.exists():
        raise NasgraphError(f"{model}: no such run folder or .onnx file")
    if model.suffix.lower() in (".yaml", ".yml") and model.is_file():
        raise NasgraphError(f"{model} is a spec: train it first (`nasgraph train {model} --out RUN`), then "
                            f"`nasgraph generate RUN`")
    if has_decode_graphs(model) and not (model / "spec.yaml").exists() and not args.full_forward:
        from exporters.decode_runtime import OrtDecoder

        decoder = OrtDecoder(model, args.threads, args.provider)     # prefill once, then a step per token
        return decoder.sequence(), decoder.tokenizer, decoder.max_len
    if model.is_dir():
        return eager_model(model, args.threads, args.provider, args.full_forward)
    from exporters.generate import OnnxLM

    lm = OnnxLM(model, args.provider, threads=args.threads)
    return lm.scorer, lm.tokenizer, lm.max_len


class TextStream:
    """Token texts written to `out` as they come, symbols separated by spaces. Piped or redirected: the tokens'
    bytes unchanged. On a terminal (or a stream without bytes): UTF-8 decoded incrementally (a character split
    over tokens shows when whole), control characters and invalid bytes escaped (\\x1b), newlines and tabs kept."""

    def __init__(self, tok, out, first_sep: str = ""):
        self.tok, self.sep = tok, first_sep
        tty = getattr(out, "isatty", lambda: False)()
        out.flush()
        if tty and hasattr(out, "reconfigure"):
            out.reconfigure(errors="backslashreplace")                # a terminal in a narrower encoding
        self.out = out if tty or not hasattr(out, "buffer") else out.buffer
        self.raw = self.out is not out
        self.utf8 = codecs.getincrementaldecoder("utf-8")(errors="surrogateescape")

    def _emit(self, data: bytes, final: bool = False) -> None:
        self.out.write(data if self.raw else terminal_safe(self.utf8.decode(data, final)))
        self.out.flush()

    def prompt(self, text: str) -> None:
        self._emit(text.encode("utf-8", "surrogateescape"))           # argv's undecodable bytes as they came

    def write(self, token: int) -> None:
        if self.tok.kind == "symbols":
            text, self.sep = self.sep + self.tok.decode([token]), " "
        else:
            text = self.tok.decode([token])
        self._emit(text.encode("utf-8", "surrogateescape"))

    def close(self) -> None:
        self._emit(b"", final=True)                                    # a character left unfinished: escaped
        self.out.write(b"\n" if self.raw else "\n")
        self.out.flush()


def run(args) -> int:
    from nasgraph.errors import NasgraphError
    from nasgraph.generation import stream

    if args.threads is not None and args.threads < 1:
        raise NasgraphError(f"--threads must be >= 1, got {args.threads}")
    if args.json and args.max_new_tokens > MAX_JSON_TOKENS:
        raise NasgraphError(f"--max-new-tokens {args.max_new_tokens:,} with --json: at most {MAX_JSON_TOKENS:,} "
                            f"(--json holds every id until the end); without --json the text streams, any length")
    model, tok, max_len = open_model(args)
    try:
        prompt = tok.ids(args.prompt)
    except NasgraphError as err:                                      # a symbol outside the vocabulary
        raise NasgraphError(f"--prompt: {err}") from None
    tokens = stream(model, prompt, args.max_new_tokens, max_len, temperature=args.temperature, top_k=args.top_k,
                    seed=args.seed)                                   # options checked here, before any output
    if len(prompt) + args.max_new_tokens > max_len - 1:
        print(f"nasgraph generate: note: past max_len {max_len} the context slides: each token sees <cls> and the "
              f"latest {max_len - 1} tokens", file=sys.stderr)
    if args.json:
        return _json(args, tok, tokens)
    sep = " " if tok.kind == "symbols" and args.prompt.strip() else ""
    text, done = TextStream(tok, sys.stdout, sep), 0
    text.prompt(args.prompt)
    try:
        for token in tokens:                                          # only a count is kept: bounded memory
            text.write(token)
            done += 1
    except KeyboardInterrupt:
        text.close()
        return _interrupted(done, args.max_new_tokens)
    text.close()
    return 0


def _json(args, tok, tokens) -> int:
    from tqdm.auto import tqdm

    code, new = 0, []
    with tqdm(total=args.max_new_tokens, desc="generate", unit="tok", disable=None if args.progress else True,
              file=sys.stderr, leave=False) as bar:
        try:
            for token in tokens:
                new.append(token)
                bar.update()
        except KeyboardInterrupt:
            code = _interrupted(len(new), args.max_new_tokens)
    row = {"prompt": printable(args.prompt), "continuation": printable(tok.decode(new)), "ids": new}
    if code:
        row["interrupted"] = True
    print(json_safe(json.dumps(row, ensure_ascii=False)))             # no raw C1 control on a terminal
    return code


def _interrupted(done: int, wanted: int) -> int:
    print(f"nasgraph generate: interrupted after {done:,} of {wanted:,} tokens; kept what was generated",
          file=sys.stderr)
    return 130
