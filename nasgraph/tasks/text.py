"""Byte-level text classification from local files (LRA "Text" is IMDb at 1000 bytes).

Formats: the aclImdb folder (train|test/<class>/*.txt; aclImdb's unlabelled train/unsup is skipped),
CSV / TSV / JSONL files with a text and a label column, and through Hugging Face datasets (the `hf`
extra; local only, nothing downloaded) Parquet files and folders written by save_to_disk (a
DatasetDict's train / validation / test splits are used as such). Ids are UTF-8 bytes + 2 (past <pad>, <cls>),
truncated to max_len with <cls>. Class names come from the data, sorted (numerically when all are
integers), unless `class_names` gives them. Missing val/test files: carved from train with the seed.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator, Literal

from pydantic import Field

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks.base import SPECIALS, Split, Task, TaskConfig, TaskData, carve
from nasgraph.tasks.registry import register
from nasgraph.tasks.tokenize import Tokenizer

FORMATS = ("aclimdb", "csv", "tsv", "jsonl", "parquet", "hf")
SUFFIX_FORMAT = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl", ".parquet": "parquet"}
HF_FORMATS = ("parquet", "hf")                     # read through Hugging Face datasets (nasgraph.tasks._hf)
ACLIMDB_SKIP = {"unsup"}
ENCODING = dict(encoding="utf-8", errors="surrogateescape")   # keeps any byte; the tokenizer restores it


class TextConfig(TaskConfig):
    kind: str = "text"
    path: str                                      # aclImdb or save_to_disk folder, or the train file
    format: Literal["auto", "aclimdb", "csv", "tsv", "jsonl", "parquet", "hf"] = "auto"  # auto: by suffix / folder
    max_len: int = Field(1000, ge=2)
    text_column: str = "text"
    label_column: str = "label"
    val_path: str | None = None
    test_path: str | None = None                   # aclimdb: <path>/test when present
    val_fraction: float = Field(0.1, gt=0, lt=1)   # carved from train when no val file
    test_fraction: float = Field(0.1, gt=0, lt=1)  # carved from train when no test file
    class_names: tuple[str, ...] | None = None     # label order; default: sorted labels of the train data


def _format(config: TextConfig) -> str:
    path = Path(config.path)
    if config.format != "auto":
        return config.format
    if path.is_dir():
        from nasgraph.tasks._hf import is_saved_dataset

        return "hf" if is_saved_dataset(path) else "aclimdb"
    try:
        return SUFFIX_FORMAT[path.suffix.lower()]
    except KeyError:
        raise ConfigError(f"task 'text': cannot tell the format of {path} from its suffix; set format "
                          f"to one of {', '.join(FORMATS)}", key="format") from None


def _sort_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=int)
    except ValueError:
        return sorted(labels)


# -- readers: each yields (text, label string) ---------------------------------------------------------
def _aclimdb_classes(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and d.name not in ACLIMDB_SKIP
                  and any(d.glob("*.txt")))


def read_aclimdb(root: Path) -> Iterator[tuple[str, str]]:
    """Reviews of root/<class>/*.txt, in sorted order."""
    if not root.is_dir():
        raise NasgraphError(f"task 'text': no such folder: {root} (aclImdb layout: train|test/pos|neg/*.txt)")
    classes = _aclimdb_classes(root)
    if not classes:
        raise NasgraphError(f"task 'text': {root} has no class folders with .txt files "
                            f"(aclImdb layout: train|test/pos|neg/*.txt)")
    for name in classes:
        for file in sorted((root / name).glob("*.txt")):
            yield file.read_text(**ENCODING), name


def read_table(path: Path, fmt: str, text_col: str, label_col: str) -> Iterator[tuple[str, str]]:
    """Rows of a CSV/TSV (with a header) or JSONL file; errors name the file and line."""
    if not path.is_file():
        raise NasgraphError(f"task 'text': no such file: {path}")
    with open(path, "rb") as f:
        if b"\x00" in f.read(8192):
            raise NasgraphError(f"{path}: binary file (NUL bytes), not {fmt.upper()} text")
    with open(path, newline="", **ENCODING) as f:
        if fmt == "jsonl":
            for line_no, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as err:
                    raise NasgraphError(f"{path}:{line_no}: invalid JSON: {err.msg}") from None
                yield _fields(row, path, line_no, text_col, label_col)
            return
        reader = csv.DictReader(f, delimiter="," if fmt == "csv" else "\t")
        try:
            header = reader.fieldnames or []
            if not header:
                raise NasgraphError(f"{path}: empty file; expected a header with '{text_col}' and '{label_col}'")
            for col in (text_col, label_col):
                if col not in header:
                    shown = ", ".join(ascii(h)[1:-1][:40] for h in header[:10]) or "(none)"
                    raise NasgraphError(f"{path}:1: no column '{col}' in the header; columns: {shown}")
            for row in reader:
                if None in row or None in row.values():
                    raise NasgraphError(f"{path}:{reader.line_num}: expected {len(header)} fields "
                                        f"({', '.join(header)})")
                yield _fields(row, path, reader.line_num, text_col, label_col)
        except csv.Error as err:
            raise NasgraphError(f"{path}:{reader.line_num}: malformed {fmt.upper()}: {err}") from None


def _fields(row: object, path: Path, line_no: int, text_col: str, label_col: str) -> tuple[str, str]:
    if not isinstance(row, dict):
        raise NasgraphError(f"{path}:{line_no}: expected an object with '{text_col}' and '{label_col}'")
    for col in (text_col, label_col):
        if col not in row:
            raise NasgraphError(f"{path}:{line_no}: missing '{col}'; keys: {', '.join(map(str, row))}")
    text, label = row[text_col], row[label_col]
    if not isinstance(text, str):
        raise NasgraphError(f"{path}:{line_no}: '{text_col}' must be a string, got {type(text).__name__}")
    label = str(label).strip()
    if not label:
        raise NasgraphError(f"{path}:{line_no}: empty label in '{label_col}'")
    return text, label


@register("text")
class TextTask(Task):
    """Byte-level classification of local text files."""

    Config = TextConfig

    def check(self) -> None:
        c = self.config
        self.format = _format(c)
        if c.val_fraction + c.test_fraction >= 1:
            raise ConfigError(f"task 'text': val_fraction + test_fraction must be < 1, got "
                              f"{c.val_fraction} + {c.test_fraction}", key="val_fraction")
        if c.class_names is not None and len(set(c.class_names)) != len(c.class_names):
            raise ConfigError(f"task 'text': class_names has duplicates: {list(c.class_names)}", key="class_names")

    def _paths(self) -> dict[str, Path | None]:
        c, root = self.config, Path(self.config.path)
        if self.format == "aclimdb":
            test = Path(c.test_path) if c.test_path else (root / "test" if (root / "test").is_dir() else None)
            return {"train": root / "train", "val": Path(c.val_path) if c.val_path else None, "test": test}
        if self.format == "hf":
            from nasgraph.tasks._hf import split_folders

            found = split_folders(root)
            return {"train": found["train"], "val": Path(c.val_path) if c.val_path else found["val"],
                    "test": Path(c.test_path) if c.test_path else found["test"]}
        return {"train": root, "val": Path(c.val_path) if c.val_path else None,
                "test": Path(c.test_path) if c.test_path else None}

    def _read(self, path: Path) -> Iterator[tuple[str, str]]:
        if self.format == "aclimdb":
            return read_aclimdb(path)
        if self.format in HF_FORMATS:
            from nasgraph.tasks._hf import read_dataset

            return read_dataset(path, self.format, self.config.text_column, self.config.label_column)
        return read_table(path, self.format, self.config.text_column, self.config.label_column)

    def class_names(self) -> list[str]:
        """Given class_names, or the sorted labels of the train data (reads labels only)."""
        if self.config.class_names is not None:
            return list(self.config.class_names)
        train = self._paths()["train"]
        if self.format == "aclimdb":
            names = _aclimdb_classes(train) if train.is_dir() else []
            if not names:
                list(read_aclimdb(train))            # raises the clear error
            return names
        labels = {label for _, label in self._read(train)}
        if not labels:
            raise NasgraphError(f"task 'text': {train} has no examples")
        return _sort_labels(labels)

    def vocab_size(self) -> int:
        return len(SPECIALS) + 256

    def num_classes(self) -> int:
        if self.config.num_classes is not None and self.config.class_names is None:
            return self.config.num_classes           # trusted here, checked against the data in load()
        return len(self.class_names())

    def _split(self, path: Path, tok: Tokenizer, index: dict[str, int]) -> Split:
        ids, labels = [], []
        for text, label in self._read(path):
            if label not in index:
                raise NasgraphError(f"task 'text': {path}: label '{label}' is not a class; classes: "
                                    f"{', '.join(index)}")
            ids.append(tok.encode(text))
            labels.append(index[label])
        if not labels:
            raise NasgraphError(f"task 'text': {path} has no examples")
        return Split(ids, labels)

    def load(self) -> TaskData:
        c = self.config
        names = self.class_names()
        if c.num_classes is not None and c.num_classes != len(names):
            raise ConfigError(f"task 'text': num_classes {c.num_classes} disagrees with the {len(names)} "
                              f"classes in the data ({', '.join(names)})", key="num_classes")
        tok = Tokenizer("bytes", c.max_len)
        index = {name: i for i, name in enumerate(names)}
        paths = self._paths()
        splits = {"train": self._split(paths["train"], tok, index)}
        n_read = len(splits["train"])
        for name, fraction in (("val", c.val_fraction), ("test", c.test_fraction)):
            if paths[name] is not None:
                splits[name] = self._split(paths[name], tok, index)
            else:
                n = max(1, round(fraction * n_read))
                if n >= len(splits["train"]):
                    raise NasgraphError(f"task 'text': {paths['train']} has {n_read} examples, too few to "
                                        f"carve a {name} split from; give {name}_path")
                splits["train"], splits[name] = carve(splits["train"], n, c.seed + len(splits))
        vocab = SPECIALS + [f"<0x{b:02X}>" for b in range(256)]
        return TaskData(splits=splits, vocab=vocab, class_names=names, tokenizer=tok.to_dict())
