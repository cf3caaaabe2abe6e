"""Classify raw text with an exported nasgraph model: tokenise with its metadata, run ONNX Runtime.

Example:
    >>> p = Predictor("model.onnx")                      # provider "cpu"; "cuda" is verified, not hoped for
    >>> label, probs = p.predict(["[MAX 2 9 [MIN 4 7 ] 0 ]"])[0]
    >>> label, probs["9"]
    ('9', 0.93)

Texts are truncated to the model's max_len by its tokenizer (as in training); token arrays given to
`logits()` directly must fit max_len, else SequenceTooLongError: the ONNX graph itself has no length
check (see exporters.model_export).
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from exporters.errors import ExportError
from exporters.runtime import make_session, read_metadata, session_settings
from nasgraph.errors import NasgraphError, SequenceTooLongError
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
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise ExportError(f"{path} is not a `nasgraph export` model: metadata lacks {', '.join(missing)}")
        if meta.get("nasgraph.output") == "token":
            raise NasgraphError(f"{path} is a language model (per-position next-token logits), not a classifier: "
                                f"continue a text with `nasgraph generate {path} --prompt TEXT`")
        self.path, self.metadata, self.batch_size = Path(path), meta, max(1, batch_size)
        self.class_names: list[str] = json.loads(meta["nasgraph.class_names"])
        self.max_len = int(meta["nasgraph.max_len"])
        self.tokenizer = Tokenizer.from_dict(json.loads(meta["nasgraph.tokenizer"]))
        if self.tokenizer.max_len > self.max_len:
            raise ExportError(f"{path}: tokenizer keeps {self.tokenizer.max_len} tokens but the model "
                              f"takes at most {self.max_len}")
        self.session = make_session(path, provider, threads=threads)   # raises if the provider is not used
        self.provider = session_settings(self.session)["provider"]
        self.input_name = self.session.get_inputs()[0].name

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        """tokens (B, T) int ids, padded with 0 -> logits (B, C)."""
        tokens = np.ascontiguousarray(tokens, dtype=np.int64)
        if tokens.ndim != 2:
            raise NasgraphError(f"tokens must be (batch, seq), got shape {tokens.shape}")
        if tokens.shape[1] > self.max_len:
            raise SequenceTooLongError(f"sequence length {tokens.shape[1]} exceeds the model's max_len "
                                       f"{self.max_len}; truncate (the tokenizer does)")
        return self.session.run(None, {self.input_name: tokens})[0]            # (B, C)

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
        return _nonempty(Inputs([l.rstrip("\n") for l in sys.stdin], None, "lines"), "stdin")
    if not _is_file(path):
        return Inputs([source], None, "text")
    if path.suffix.lower() != ".tsv":
        lines = path.read_text(encoding="utf-8").splitlines()
        return _nonempty(Inputs(lines, None, "lines"), str(path))
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.reader(fh, delimiter="\t") if r and any(c.strip() for c in r)]
    names = set(class_names)
    second = [r[1].strip() if len(r) > 1 else None for r in rows]
    if len(rows) > 1 and second[0] not in names and second[1] in names:
        rows, second = rows[1:], second[1:]
    if not rows:
        raise NasgraphError(f"{path}: no rows to classify")
    targets = second if names and all(s in names for s in second) else None
    return Inputs([r[0] for r in rows], targets, "tsv")  # type: ignore[arg-type]


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a long text is not a valid file name
        return False


def _nonempty(inputs: Inputs, where: str) -> Inputs:
    if not any(t.strip() for t in inputs.texts):
        raise NasgraphError(f"{where}: no non-blank lines to classify")
    return inputs
