"""Causal language modelling on local text: predict every next token; bits per byte and perplexity.

Data: one file cut 90/5/5 into train/val/test by position (the enwik8 convention), or separate
`val_path` / `test_path` files (a missing one is cut from the end of the train text). Ids are the
text's bytes by default (<pad>, <cls>, 256 bytes); `vocab_path` adds a user vocabulary of pieces
(multi-byte strings, matched longest first, bytes for the rest: lossless).

Each split's token stream is cut into non-overlapping windows of max_len tokens. An example is <cls>
followed by the window's first max_len - 1 tokens; its labels are the window (position t predicts
token t: <cls> the first, the last position the window's last), so every token of a split is
predicted exactly once, the first ones of each window with little context (the usual non-overlapping
evaluation). Batches pad the last, short window; padded positions are labelled IGNORE.

Bits per byte = summed cross-entropy (nats) / ln 2 / bytes predicted; with byte ids that is the mean
cross-entropy / ln 2. Perplexity is per token.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from pydantic import Field

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks.base import CLS_ID, IGNORE, SPECIALS, SPLITS, Split, Task, TaskConfig, TaskData
from nasgraph.tasks.registry import register
from nasgraph.tasks.tokenize import Tokenizer

BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]


class LMConfig(TaskConfig):
    kind: str = "lm"
    path: str                                      # the text (all splits, or train when val/test paths are given)
    val_path: str | None = None
    test_path: str | None = None
    max_len: int = Field(256, ge=2)                # model input length: <cls> + max_len - 1 tokens
    val_fraction: float = Field(0.05, gt=0, lt=1)  # of the text, when no val_path (taken from the end)
    test_fraction: float = Field(0.05, gt=0, lt=1)
    max_bytes: int | None = Field(None, gt=0)      # read at most this many bytes of each file
    vocab_path: str | None = None                  # pieces: a .json list of strings, or one piece per line


def read_pieces(path: str | Path) -> list[str]:
    """A user vocabulary: a JSON list of strings, or a text file with one piece per line.

    Pieces must be distinct and longer than one byte (single bytes are always in the vocabulary).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task 'lm': no such vocabulary file: {path}", key="vocab_path")   # located in the spec
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    if path.suffix.lower() == ".json":
        try:
            pieces = json.loads(text)
        except json.JSONDecodeError as err:
            raise NasgraphError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
        if not isinstance(pieces, list) or not all(isinstance(p, str) for p in pieces):
            raise NasgraphError(f"{path}: expected a JSON list of strings")
        where = lambda i: f"{path}: item {i}"        # noqa: E731
    else:
        pieces = text.split("\n")
        if pieces and pieces[-1] == "":
            pieces.pop()
        where = lambda i: f"{path}:{i + 1}"          # noqa: E731
    seen: set[str] = set()
    for i, piece in enumerate(pieces):
        if len(piece.encode("utf-8", "surrogateescape")) < 2:
            raise NasgraphError(f"{where(i)}: piece {piece!r} is a single byte (bytes are always in the "
                                f"vocabulary); give pieces of two or more bytes")
        if piece in seen:
            raise NasgraphError(f"{where(i)}: duplicate piece {piece!r}")
        seen.add(piece)
    if not pieces:
        raise NasgraphError(f"{path}: no pieces")
    return pieces


def read_bytes(path: str | Path, limit: int | None, what: str, key: str) -> bytes:
    """The bytes of a data file (at most `limit`); ConfigError at `key` (located in the spec) when it
    is missing, a folder or empty."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"task 'lm': {path} is a folder, not a {what} file", key=key)
    if not path.is_file():
        raise ConfigError(f"task 'lm': no such {what} file: {path}", key=key)
    with open(path, "rb") as f:
        data = f.read(limit) if limit else f.read()
    if not data:
        raise ConfigError(f"task 'lm': {path} is empty", key=key)
    return data


def windows(stream: list[int], max_len: int) -> Split:
    """Non-overlapping examples: ids <cls> + window[:-1], labels the window (max_len tokens, the last fewer)."""
    ids, labels = [], []
    for start in range(0, len(stream), max_len):
        window = stream[start:start + max_len]
        ids.append([CLS_ID] + window[:-1])
        labels.append(window)
    return Split(ids, labels)


@register("lm")
class LMTask(Task):
    """Causal next-token prediction over local text; headline metric bits per byte (lower is better)."""

    Config = LMConfig
    output = "token"
    metric = "bits_per_byte"
    higher_is_better = False
    _tokenizer: Tokenizer | None = None            # built on first use (reads vocab_path)

    def check(self) -> None:
        c = self.config
        if c.val_path is None and c.test_path is None and c.val_fraction + c.test_fraction >= 1:
            raise ConfigError(f"task 'lm': val_fraction + test_fraction must be < 1, got "
                              f"{c.val_fraction} + {c.test_fraction}", key="val_fraction")

    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            c = self.config
            self._tokenizer = (Tokenizer("pieces", c.max_len, pieces=read_pieces(c.vocab_path))
                               if c.vocab_path else Tokenizer("bytes", c.max_len))
        return self._tokenizer

    def vocab_size(self) -> int:
        return self.tokenizer().vocab_size

    def num_classes(self) -> int:
        return self.vocab_size()                   # one class per next token

    def vocab(self) -> list[str]:
        return SPECIALS + BYTE_TOKENS + self.tokenizer().pieces

    def texts(self) -> dict[str, bytes]:
        """Each split's bytes: separate files, or contiguous cuts of `path` (train, val, test)."""
        c = self.config
        train = read_bytes(c.path, c.max_bytes, "text", "path")
        given = {"val": c.val_path, "test": c.test_path}
        out = {name: read_bytes(p, c.max_bytes, name, f"{name}_path") for name, p in given.items() if p}
        cuts = [name for name in ("val", "test") if name not in out]
        sizes = {"val": round(c.val_fraction * len(train)), "test": round(c.test_fraction * len(train))}
        rest = len(train) - sum(sizes[n] for n in cuts)
        if any(sizes[n] < 1 for n in cuts) or rest < 1:
            raise ConfigError(f"task 'lm': {c.path} has {len(train)} bytes, too few to cut "
                              f"{' and '.join(cuts)} from; give a longer text or val_path/test_path", key="path")
        out["train"], pos = train[:rest], rest
        for name in cuts:
            out[name], pos = train[pos:pos + sizes[name]], pos + sizes[name]
        return out

    def load(self) -> TaskData:
        tok = self.tokenizer()
        texts = self.texts()
        splits = {name: windows(tok.ids_of_bytes(texts[name]), self.config.max_len) for name in SPLITS}
        vocab = self.vocab()
        return TaskData(splits=splits, vocab=vocab, class_names=list(vocab), tokenizer=tok.to_dict())

    def metrics_from(self, loss_sum: float, correct: int, n: int, split: Split | None = None) -> dict:
        metrics = super().metrics_from(loss_sum, correct, n, split)
        per_token = 1.0                            # byte ids: one byte per token
        if self.config.vocab_path:                 # pieces: bytes per labelled token of the whole split
            if split is None:                      # (exact for a full evaluation, the mean for a partial one)
                raise ValueError("task 'lm' with pieces needs the evaluated split for bits per byte")
            width = self.tokenizer().piece_bytes
            labelled = [y for row in split.labels for y in row if y != IGNORE]
            per_token = sum(width[y] for y in labelled) / max(1, len(labelled))
        metrics["bits_per_byte"] = loss_sum / n / math.log(2) / per_token
        metrics["perplexity"] = math.exp(min(loss_sum / n, 700.0))
        return metrics
