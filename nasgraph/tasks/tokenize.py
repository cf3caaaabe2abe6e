"""Raw text -> token ids, exactly as a task tokenises it; pure Python (no torch) so deploy code can use it.

A task stores `Tokenizer.to_dict()` in TaskData.tokenizer; the ONNX side keeps that dict in the model
metadata and rebuilds the tokenizer with `Tokenizer.from_dict()` in `nasgraph predict`.

Two kinds:
- "symbols": drop the `strip` characters, split on whitespace, look each symbol up in `vocab`
  (ListOps: strip "(" and ")", "]" is a symbol; the synthetic tasks: space-separated symbols).
- "bytes": UTF-8 bytes, id = byte + `offset` (offset 2 skips <pad> and <cls>).
- "pieces": a user vocabulary of byte strings over the bytes: the longest piece that matches at each
  place, else the byte (ids: <pad>, <cls>, 256 bytes, then the pieces); lossless like "bytes".
All prepend <cls> and keep at most `max_len` ids (<cls> included).
"""
from __future__ import annotations

from typing import Any

from nasgraph.errors import NasgraphError

PAD_ID, CLS_ID = 0, 1          # same values as nasgraph.tasks.base (which imports pydantic, not needed here)
FORMAT_VERSION = 1
KINDS = ("symbols", "bytes", "pieces")


class Tokenizer:
    """Encode raw input text into the ids a trained model expects."""

    def __init__(self, kind: str, max_len: int, *, vocab: list[str] | None = None, strip: str = "",
                 offset: int = 2, pieces: list[str] | None = None):
        if kind not in KINDS:
            raise NasgraphError(f"tokenizer: unknown kind '{kind}'; valid: {', '.join(KINDS)}")
        if max_len < 1:
            raise NasgraphError(f"tokenizer: max_len must be >= 1 (got {max_len})")
        if kind == "symbols" and not vocab:
            raise NasgraphError("tokenizer: kind 'symbols' needs a vocab")
        self.kind, self.max_len, self.strip, self.offset = kind, max_len, strip, offset
        self.vocab = list(vocab or [])
        self._ids = {symbol: i for i, symbol in enumerate(self.vocab)}
        self._strip_table = str.maketrans("", "", strip)
        self.pieces = list(pieces or [])
        encoded = [p.encode("utf-8", "surrogateescape") for p in self.pieces]
        self._piece_ids = {b: 256 + offset + i for i, b in enumerate(encoded) if len(b) > 1}
        self._longest = max(map(len, self._piece_ids), default=1)
        self.piece_bytes = [0] * offset + [1] * 256 + [len(b) for b in encoded]  # bytes each id stands for
        self._id_bytes = [b""] * offset + [bytes([i]) for i in range(256)] + encoded

    @property
    def vocab_size(self) -> int:
        return len(self.vocab) if self.kind == "symbols" else 256 + self.offset + len(self.pieces)

    def ids_of_bytes(self, data: bytes) -> list[int]:
        """The ids of raw bytes (kinds "bytes" and "pieces"), without <cls> and without truncation."""
        if self.kind == "bytes" or not self._piece_ids:
            return [b + self.offset for b in data]
        ids, pos, n, table, longest = [], 0, len(data), self._piece_ids, self._longest
        while pos < n:
            for size in range(min(longest, n - pos), 1, -1):
                hit = table.get(data[pos:pos + size])
                if hit is not None:
                    ids.append(hit)
                    pos += size
                    break
            else:
                ids.append(data[pos] + self.offset)
                pos += 1
        return ids

    def symbols(self, text: str) -> list[str]:
        """The symbols of `text` (kind "symbols"), before lookup and truncation."""
        return text.translate(self._strip_table).split()

    def length(self, text: str) -> int:
        """How many ids `text` has before truncation to max_len (<cls> included)."""
        if self.kind == "bytes":
            return 1 + len(text.encode("utf-8", "surrogateescape"))
        return 1 + (len(self.symbols(text)) if self.kind == "symbols" else len(self.ids(text)))

    def encode(self, text: str) -> list[int]:
        """<cls> followed by the ids of `text`, at most max_len ids in all."""
        keep = self.max_len - 1
        if self.kind == "bytes":                   # slice the bytes first: long texts stay cheap
            data = text.encode("utf-8", "surrogateescape")[:keep]  # surrogateescape: raw bytes round-trip
            return [CLS_ID] + [b + self.offset for b in data]
        return [CLS_ID] + self.ids(text, keep)

    def ids(self, text: str, limit: int | None = None) -> list[int]:
        """The ids of `text` without <cls>, the first `limit` of them (None: all)."""
        if self.kind != "symbols":
            return self.ids_of_bytes(text.encode("utf-8", "surrogateescape"))[:limit]
        ids = []
        for symbol in self.symbols(text)[:limit]:
            try:
                ids.append(self._ids[symbol])
            except KeyError:
                shown = ", ".join(self.vocab[2:22]) + (" ..." if len(self.vocab) > 22 else "")
                raise NasgraphError(f"tokenizer: unknown symbol {symbol!r}; valid: {shown}") from None
        return ids

    def decode(self, ids: list[int]) -> str:
        """Inverse of encode (without <pad>/<cls>); symbols are joined with spaces."""
        body = [i for i in ids if i not in (PAD_ID, CLS_ID)]
        if self.kind == "bytes":
            return bytes(i - self.offset for i in body).decode("utf-8", "surrogateescape")
        if self.kind == "pieces":
            return b"".join(self._id_bytes[i] for i in body).decode("utf-8", "surrogateescape")
        return " ".join(self.vocab[i] for i in body)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description; `from_dict(to_dict())` encodes identically."""
        d: dict[str, Any] = {"version": FORMAT_VERSION, "kind": self.kind, "max_len": self.max_len,
                             "pad_id": PAD_ID, "cls_id": CLS_ID}
        if self.kind == "symbols":
            d.update(vocab=list(self.vocab), strip=self.strip)
        else:
            d.update(offset=self.offset, encoding="utf-8")
        if self.kind == "pieces":
            d.update(pieces=list(self.pieces))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Tokenizer":
        if not isinstance(d, dict) or "kind" not in d or "max_len" not in d:
            raise NasgraphError(f"tokenizer: expected a dict with 'kind' and 'max_len', got {d!r:.200}")
        if d.get("version", FORMAT_VERSION) != FORMAT_VERSION:
            raise NasgraphError(f"tokenizer: format version {d['version']} is not supported "
                                f"(this nasgraph reads version {FORMAT_VERSION})")
        if (d.get("pad_id", PAD_ID), d.get("cls_id", CLS_ID)) != (PAD_ID, CLS_ID):
            raise NasgraphError(f"tokenizer: pad_id/cls_id {d.get('pad_id')}/{d.get('cls_id')} differ from "
                                f"this nasgraph's {PAD_ID}/{CLS_ID}")
        return cls(d["kind"], int(d["max_len"]), vocab=d.get("vocab"), strip=d.get("strip", ""),
                   offset=int(d.get("offset", 2)), pieces=d.get("pieces"))
