"""Classify raw text with an exported nasgraph model: tokenise with its metadata, run ONNX Runtime.

Example:
    >>> p = Predictor("model.onnx")                      # provider "cpu"; "cuda" is verified, not hoped for
    >>> label, probs = p.predict(["[MAX 2 9 [MIN 4 7 ] 0 ]"])[0]
    >>> label, probs["9"]
    ('9', 0.93)

Texts are truncated to the model's max_len by its tokenizer (as in training); token arrays given to
`logits()` directly must fit max_len, else SequenceTooLongError (the graph itself refuses them too).

A batch without padding (batch 1, or equal lengths) runs on the unpadded graph beside the model
(`model.unpadded.onnx`, written by `nasgraph export`; fused mask-free attention) when it is there,
a batch with padding on the padded graph. Given only an unpadded graph, rows are run in groups of
equal length.
"""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from exporters.errors import ExportError
from exporters.model_export import unpadded_path
from exporters.runtime import make_session, read_metadata, session_settings
from nasgraph.errors import NasgraphError, SequenceTooLongError
from nasgraph.infile import read_bounded
from nasgraph.tasks.tokenize import PAD_ID, Tokenizer

REQUIRED = ("nasgraph.tokenizer", "nasgraph.class_names", "nasgraph.max_len")


class Prediction(NamedTuple):
    label: str
    probs: dict[str, float]  # class name -> probability, in the model's class order

    def top(self, k: int) -> list[tuple[str, float]]:
        """The k most probable classes, most probable first."""
        return sorted(self.probs.items(), key=lambda cp: -cp[1])[:k]


class Predictor:
    """An exported model ready to classify texts on a verified provider."""

    def __init__(self, path: str | Path, provider: str = "cpu", *, threads: int | None = None,
                 batch_size: int = 32):
        meta = read_metadata(path)
        if meta.get("nasgraph.output") == "token":
            raise NasgraphError(f"{path} is a language model (per-position next-token logits), not a classifier: "
                                f"continue a text with `nasgraph generate {path} --prompt TEXT`")
        self.path, self.metadata, self.batch_size = Path(path), meta, max(1, batch_size)
        self.class_names, self.max_len, self.tokenizer = parse_metadata(path, meta)
        # sessions: "padded" and/or "unpadded"; make_session raises if the provider is not really used
        self.sessions = {}
        if meta.get("nasgraph.padding") == "none":
            self.sessions["unpadded"] = make_session(path, provider, threads=threads)
        else:
            self.sessions["padded"] = make_session(path, provider, threads=threads)
            sibling = self.path.with_name(meta["nasgraph.unpadded_variant"]) if "nasgraph.unpadded_variant" in meta \
                else unpadded_path(self.path)
            if sibling.is_file():
                self.sessions["unpadded"] = make_session(sibling, provider, threads=threads)
        self.session = next(iter(self.sessions.values()))
        self.provider = session_settings(self.session)["provider"]
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or not outputs:
            raise ExportError(f"{path}: expected one input (tokens) and a logits output, got "
                              f"{len(inputs)} input(s) and {len(outputs)} output(s)")
        self.input_name = inputs[0].name
        classes = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(classes, int) and classes != len(self.class_names):
            raise ExportError(f"{path}: the model emits {classes} logits but its metadata names "
                              f"{len(self.class_names)} classes")
        self.last_graph = ""  # which graph the latest logits() call ran on

    def graph_for(self, tokens: np.ndarray) -> str:
        """"unpadded" for a batch without padding when that graph is there, else "padded"."""
        if "unpadded" in self.sessions and not (tokens == PAD_ID).any():
            return "unpadded"
        return "padded" if "padded" in self.sessions else "unpadded-by-length"

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (B, T) int ids, padded with 0 -> logits (B, C)."""
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if tokens.ndim != 2:
            raise NasgraphError(f"tokens must be (batch, seq), got shape {tokens.shape}")
        if tokens.shape[1] > self.max_len:
            raise SequenceTooLongError(f"sequence length {tokens.shape[1]} exceeds the model's max_len "
                                       f"{self.max_len}; truncate (the tokenizer does)")
        self.last_graph = graph = self.graph_for(tokens)
        if graph != "unpadded-by-length":
            return self.sessions[graph].run(None, {self.input_name: tokens})[0]  # (B, C)
        lengths = (tokens != PAD_ID).sum(axis=1)                                 # (B,) right padding
        out: np.ndarray | None = None
        for T in np.unique(lengths):
            rows = np.flatnonzero(lengths == T)
            part = self.sessions["unpadded"].run(None, {self.input_name: tokens[rows, :T]})[0]
            out = np.empty((len(tokens), *part.shape[1:]), part.dtype) if out is None else out
            out[rows] = part
        return out  # type: ignore[return-value]

    def truncated(self, texts: Sequence[str]) -> list[bool]:
        """Per text: whether it is longer than max_len tokens, so that only its start is classified."""
        return [self.tokenizer.length(t) > self.tokenizer.max_len for t in texts]

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """One Prediction per text, in order (batched by length internally)."""
        ids = [self.tokenizer.encode(t) for t in texts]
        out: list[Prediction | None] = [None] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            group = order[start:start + self.batch_size]
            T = max(len(ids[i]) for i in group)
            batch = np.full((len(group), T), PAD_ID, dtype=np.int64)              # (B, T)
            for row, i in enumerate(group):
                batch[row, :len(ids[i])] = ids[i]
            probs = softmax(self.logits(batch))                                    # (B, C)
            for row, i in enumerate(group):
                p = probs[row]
                out[i] = Prediction(self.class_names[int(p.argmax())],
                                    {c: float(v) for c, v in zip(self.class_names, p)})
        return out  # type: ignore[return-value]


def parse_metadata(path, meta: dict[str, str]) -> tuple[list[str], int, Tokenizer]:
    """(class names, max_len, tokenizer) from an export's metadata; ExportError naming the bad key."""
    def bad(key: str, why: str) -> ExportError:
        return ExportError(f"{path}: bad metadata {key}: {why}")

    missing = [k for k in REQUIRED if k not in meta]
    if missing:
        raise ExportError(f"{path} is not a `nasgraph export` model: metadata lacks {', '.join(missing)}")

    try:
        names = json.loads(meta["nasgraph.class_names"])
    except ValueError as err:
        raise bad("nasgraph.class_names", f"not JSON ({err.msg})") from None
    if not isinstance(names, list) or len(names) < 2 or not all(isinstance(c, str) for c in names):
        raise bad("nasgraph.class_names", "expected a JSON list of at least 2 class names")
    try:
        max_len = int(meta["nasgraph.max_len"])
    except ValueError:
        raise bad("nasgraph.max_len", f"{meta['nasgraph.max_len'][:40]!r} is not an integer") from None
    if max_len < 1:
        raise bad("nasgraph.max_len", f"{max_len} < 1")
    try:
        tokenizer = Tokenizer.from_dict(json.loads(meta["nasgraph.tokenizer"]))
    except NasgraphError as err:
        raise bad("nasgraph.tokenizer", str(err)) from None
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise bad("nasgraph.tokenizer", f"not a tokenizer record ({type(err).__name__})") from None
    if tokenizer.max_len > max_len:
        raise ExportError(f"{path}: tokenizer keeps {tokenizer.max_len} tokens but the model takes at most {max_len}")
    return names, max_len, tokenizer


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Inputs(NamedTuple):
    texts: list[str]            # blank lines of a file or stdin stay in place (nothing to classify there)
    targets: list[str] | None   # a TSV's second column, when every row's is a class name
    kind: str                   # "text", "lines" or "tsv"


def read_inputs(source: str, class_names: Sequence[str] = ()) -> Inputs:
    """A literal text, "-" (lines of stdin), a file of lines, or a .tsv file (first column = text).

    A TSV whose second column holds class names gives targets; a first row whose second column is
    not a class name while the next row's is (Source<TAB>Target) is taken as a header and skipped.
    """
    path = Path(source)
    if source == "-":
        stdin = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
        data = stdin.read(MAX_INPUT_BYTES + 1) if stdin else sys.stdin.read(MAX_INPUT_BYTES + 1).encode()
        text = decode_text(_bounded(data, "stdin"), "stdin")
        return _nonempty(Inputs(text.splitlines(), None, "lines"), "stdin")
    if not _is_file(path):
        if _is_dir(path):
            raise NasgraphError(f"{source} is a folder, not a file of texts (to classify this text itself, pass it "
                                f"with --text)")
        if path.exists():                                      # a named pipe or a device
            raise NasgraphError(f"{source} is not a regular file (a pipe or device); pipe texts in with '-' as the "
                                f"input")
        if looks_like_path(source):
            raise NasgraphError(f"{source}: no such file (to classify this text itself, pass it with --text)")
        return Inputs([source], None, "text")
    text = read_text_file(path)
    if path.suffix.lower() != ".tsv":
        lines = text.splitlines()
        return _nonempty(Inputs(lines, None, "lines"), str(path))
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter="\t") if r and any(c.strip() for c in r)]
    except csv.Error as err:
        raise NasgraphError(f"{path}: malformed TSV ({err})") from None
    names = set(class_names)
    second = [r[1].strip() if len(r) > 1 else None for r in rows]
    if len(rows) > 1 and second[0] not in names and second[1] in names:
        rows, second = rows[1:], second[1:]
    if not rows:
        raise NasgraphError(f"{path}: no rows to classify")
    targets = second if names and all(s in names for s in second) else None
    return Inputs([r[0] for r in rows], targets, "tsv")  # type: ignore[arg-type]


MAX_INPUT_BYTES = 256 << 20                                   # texts read whole (/dev/zero as stdin stops here)
TEXT_SUFFIXES = {".txt", ".tsv", ".csv", ".jsonl", ".json", ".text", ".lst"}


def looks_like_path(source: str) -> bool:
    """A single token with a path separator or a text-file suffix: meant as a file, not as a text."""
    if not source or any(c.isspace() for c in source):
        return False
    return "/" in source or "\\" in source or Path(source).suffix.lower() in TEXT_SUFFIXES


def read_text_file(path: Path) -> str:
    """A UTF-8 text file (a BOM is dropped); binary or other encodings are a NasgraphError naming the file."""
    try:
        data = read_bounded(path, MAX_INPUT_BYTES)
    except OSError as err:
        raise NasgraphError(f"{path}: cannot read it ({err.strerror})") from None
    return decode_text(_bounded(data, str(path)), str(path))


def _bounded(data: bytes, where: str) -> bytes:
    if len(data) > MAX_INPUT_BYTES:
        raise NasgraphError(f"{where}: more than {MAX_INPUT_BYTES:,} bytes of text to classify; split it")
    return data


def decode_text(data: bytes, where: str) -> str:
    if b"\x00" in data[:8192]:
        raise NasgraphError(f"{where}: binary file (NUL bytes), not text to classify")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise NasgraphError(f"{where}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset {err.start}); "
                            f"convert it, e.g. iconv -f latin1 -t utf-8") from None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a long text is not a valid file name
        return False


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _nonempty(inputs: Inputs, where: str) -> Inputs:
    if not any(t.strip() for t in inputs.texts):
        raise NasgraphError(f"{where}: no non-blank lines to classify")
    return inputs
