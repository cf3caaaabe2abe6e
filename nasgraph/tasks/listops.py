"""ListOps (LRA): nested MIN/MAX/MED/SM expressions over digits; the label is the value (10 classes).

The generator follows LRA's lra_benchmarks/data/listops.py: the same grammar, the same random draws in
the same order (leaf-or-operator, digit, argument count, children, then the operator), the same length
(operators + digits + closing brackets) kept when min_len < length < max_len, deduplicated. Unlike
LRA it is seeded, and the unique examples are shuffled with the seed before the train/val/test cut
(LRA's cut follows Python's set order). Tokenisation follows LRA's input pipeline: strip "(" and ")",
split on whitespace, "]" is a token; <cls> goes first, so a kept example fits in max_len ids.
(LRA's own pipeline used tfds' default Tokenizer, alphanum_only=True, which also drops "[" and "]";
keeping "]" follows the common PyTorch ports and makes the bracket structure visible.)
"""
from __future__ import annotations

import csv
import io
import random
from collections import Counter
from pathlib import Path
from typing import BinaryIO

from pydantic import Field

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks.base import CLS_ID, MAX_EXAMPLES, SPECIALS, SPLITS, Split, Task, TaskConfig, TaskData, carve
from nasgraph.tasks.registry import register
from nasgraph.tasks.tokenize import Tokenizer

MIN, MAX, MED, SUM_MOD, END = "[MIN", "[MAX", "[MED", "[SM", "]"
OPERATORS = [MIN, MAX, MED, SUM_MOD]
VALUES = range(10)
VALUE_P = 0.25                                   # a node is an operator with probability VALUE_P
DIGITS = [str(v) for v in VALUES]
VOCAB = SPECIALS + OPERATORS + DIGITS + [END]
ID = {symbol: i for i, symbol in enumerate(VOCAB)}
HEADER = ["Source", "Target"]
MAX_STALE_DRAWS = 1_000_000                      # give up after this many draws without a new example
MAX_MEAN_LENGTH = 100_000                        # refuse bounds whose average draw is longer (a hang)


def _apply(op: str, args: list[int]) -> int:
    if op == MIN:
        return min(args)
    if op == MAX:
        return max(args)
    if op == MED:                                # int(np.median(args)), as LRA
        s, n = sorted(args), len(args)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2
    return sum(args) % 10


def max_length(max_depth: int, max_args: int) -> int:
    """The longest expression the generator can produce (root at depth 1, as LRA)."""
    longest = 1
    for _ in range(min(max_depth, 80) - 1):      # past 80 levels it exceeds any 64-bit length
        longest = 2 + max_args * longest
    return longest


def mean_length(max_depth: int, max_args: int) -> float:
    """The expected length of one drawn expression (each draw costs this much work)."""
    mean = 1.0
    for _ in range(max_depth - 1):
        deeper = (1 - VALUE_P) + VALUE_P * (2 + (2 + max_args) / 2 * mean)
        if deeper > MAX_MEAN_LENGTH or deeper - mean < 1e-9:   # past the limit, or converged
            return deeper
        mean = deeper
    return mean


def check_bounds(min_len: int, max_len: int, max_depth: int, max_args: int) -> None:
    """ConfigError when no expression can have min_len < length < max_len."""
    longest = max_length(max_depth, max_args)
    if longest <= min_len or max_len - min_len < 2:
        raise ConfigError(f"listops: no expression has min_len {min_len} < length < max_len {max_len} "
                          f"with max_depth {max_depth}, max_args {max_args} (longest possible: {longest})",
                          key="min_len")


def generate(n: int, *, min_len: int, max_len: int, max_depth: int = 10, max_args: int = 10,
             seed: int = 0) -> list[tuple[list[int], int]]:
    """n unique expressions with min_len < length < max_len: [(token ids without <cls>, value)].

    Deterministic for a seed; the examples come shuffled (so any cut of the list is a random split).
    """
    check_bounds(min_len, max_len, max_depth, max_args)
    rng = random.Random(seed)
    rand, bits = rng.random, rng.getrandbits
    value_ids = [ID[d] for d in DIGITS]
    op_ids = [ID[op] for op in OPERATORS]
    n_args = max_args - 1                        # randint(2, max_args) = 2 + below(max_args - 1)
    k_args, k_ops = n_args.bit_length(), len(OPERATORS).bit_length()
    out: list[int] = []

    # Draws match CPython's choice()/randint() (Random._randbelow_with_getrandbits), inlined for speed:
    # below(n) = getrandbits(n.bit_length()) redrawn until < n.
    def tree(depth: int) -> int:
        r = rand() if depth < max_depth else 1
        if r > VALUE_P:                          # a leaf: choice(VALUES)
            value = bits(4)
            while value >= 10:
                value = bits(4)
            out.append(value_ids[value])
            return value
        slot = len(out)
        out.append(0)                            # the operator is drawn after its children, as in LRA
        count = bits(k_args)
        while count >= n_args:
            count = bits(k_args)
        args = [tree(depth + 1) for _ in range(count + 2)]
        op = bits(k_ops)                         # choice(OPERATORS)
        while op >= 4:
            op = bits(k_ops)
        out[slot] = op_ids[op]
        out.append(ID[END])
        return _apply(OPERATORS[op], args)

    found: dict[tuple[int, ...], int] = {}
    stale = 0
    while len(found) < n:
        out.clear()
        value = tree(1)
        key = tuple(out)
        if min_len < len(key) < max_len and key not in found:
            found[key] = value
            stale = 0
        else:
            stale += 1
            if stale > MAX_STALE_DRAWS:
                raise NasgraphError(f"listops: found only {len(found)} of {n} unique expressions with "
                                    f"{min_len} < length < {max_len}, max_depth {max_depth}; widen the "
                                    f"bounds or ask for fewer examples")
    examples = [(list(k), v) for k, v in found.items()]
    rng.shuffle(examples)
    return examples


def lra_string(tokens: list[int]) -> str:
    """Token ids (with or without <cls>) -> LRA's text, which wraps every pair in "( ... )"."""
    symbols = [VOCAB[i] for i in tokens if i != CLS_ID]
    pos = 0

    def node() -> str:                           # LRA's to_string of ((((op, a1), a2) ...), END)
        nonlocal pos
        symbol = symbols[pos]
        pos += 1
        if symbol not in OPERATORS:
            return symbol
        args = []
        while symbols[pos] != END:
            args.append(node())
        pos += 1
        text = "( " * (len(args) + 1) + symbol + " " + args[0] + " )"
        return text + "".join(f" {a} )" for a in args[1:]) + " ] )"

    return node()


def tokenizer(max_len: int) -> Tokenizer:
    return Tokenizer("symbols", max_len, vocab=VOCAB, strip="()")


def write_tsv(dest: str | Path | BinaryIO, examples: list[tuple[list[int], int]]) -> None:
    """Write (token ids, label) pairs as LRA's TSV: header Source<TAB>Target, CRLF rows (csv.writer);
    `dest`: a path or an open binary file (left open)."""
    if not hasattr(dest, "write"):
        with open(dest, "wb") as f:
            return write_tsv(f, examples)
    text = io.TextIOWrapper(dest, encoding="utf-8", newline="")
    writer = csv.writer(text, delimiter="\t")
    writer.writerow(HEADER)
    writer.writerows([lra_string(tokens), label] for tokens, label in examples)
    text.flush()
    text.detach()


def read_tsv(path: str | Path, tok: Tokenizer) -> Split:
    """Read an LRA-format TSV (with or without the parentheses) into a Split; labels must be 0-9."""
    path = Path(path)
    if not path.is_file():
        raise NasgraphError(f"listops: no such file: {path}")
    ids, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f, delimiter="\t")
        header = next(rows, None)
        if header is None:
            raise NasgraphError(f"{path}: empty file; expected the header {'<TAB>'.join(HEADER)}")
        if [h.strip() for h in header] != HEADER:
            raise NasgraphError(f"{path}:1: expected the header {'<TAB>'.join(HEADER)}, got {header!r:.80}")
        for row in rows:
            where = f"{path}:{rows.line_num}"
            if not row:
                continue
            if len(row) != 2:
                raise NasgraphError(f"{where}: expected 2 tab-separated fields (Source, Target), got {len(row)}")
            label = row[1].strip()
            if label not in DIGITS:
                raise NasgraphError(f"{where}: Target must be a digit 0-9, got {label!r:.40}")
            try:
                ids.append(tok.encode(row[0]))
            except NasgraphError as err:
                raise NasgraphError(f"{where}: {err}") from None
            labels.append(int(label))
    if not labels:
        raise NasgraphError(f"{path}: no examples after the header")
    return Split(ids, labels)


class ListOpsConfig(TaskConfig):
    kind: str = "listops"
    max_len: int = Field(2000, ge=3)  # model input length (with <cls>); also the generator's length bound
    min_len: int = Field(500, ge=0)   # keep min_len < length < max_len, length without <cls> (LRA: 500, 2000)
    max_depth: int = Field(10, ge=1)
    max_args: int = Field(10, ge=2)
    n_train: int = Field(96_000, ge=1, le=MAX_EXAMPLES)
    n_val: int = Field(2_000, ge=0, le=MAX_EXAMPLES)
    n_test: int = Field(2_000, ge=0, le=MAX_EXAMPLES)
    train_path: str | None = None   # LRA-format TSVs; given: read instead of generating
    val_path: str | None = None     # missing val/test files: n_val/n_test carved from train
    test_path: str | None = None


@register("listops")
class ListOpsTask(Task):
    """LRA ListOps, generated (seeded) or read from LRA's released TSV files."""

    Config = ListOpsConfig

    def check(self) -> None:
        c = self.config
        if c.train_path is None and (c.val_path or c.test_path):
            raise ConfigError("listops: val_path/test_path need train_path too", key="train_path")
        if c.train_path is None:
            check_bounds(c.min_len, c.max_len, c.max_depth, c.max_args)
            if mean_length(c.max_depth, c.max_args) > MAX_MEAN_LENGTH:
                raise ConfigError(f"listops: with max_depth {c.max_depth} and max_args {c.max_args} an average "
                                  f"expression has more than {MAX_MEAN_LENGTH:,} tokens (the generator would "
                                  f"run for hours); lower max_depth (LRA: 10)", key="max_depth")

    def vocab_size(self) -> int:
        return len(VOCAB)

    def num_classes(self) -> int:
        return len(VALUES)

    def load(self) -> TaskData:
        c = self.config
        tok = tokenizer(c.max_len)
        if c.train_path is None:
            examples = generate(c.n_train + c.n_val + c.n_test, min_len=c.min_len, max_len=c.max_len,
                                max_depth=c.max_depth, max_args=c.max_args, seed=c.seed)
            split = Split([[CLS_ID] + t for t, _ in examples], [v for _, v in examples])
            cuts = [0, c.n_train, c.n_train + c.n_val, len(split)]
            splits = {name: split.subset(list(range(cuts[i], cuts[i + 1]))) for i, name in enumerate(SPLITS)}
        else:
            splits = {"train": read_tsv(c.train_path, tok)}
            for name, path, n in (("val", c.val_path, c.n_val), ("test", c.test_path, c.n_test)):
                if path:
                    splits[name] = read_tsv(path, tok)
                else:
                    splits["train"], splits[name] = carve(splits["train"], n, c.seed + len(splits))
        return TaskData(splits=splits, vocab=list(VOCAB), class_names=list(DIGITS),
                        tokenizer=tok.to_dict())


# -- baselines the benchmarks report against ----------------------------------------------------------
ROOT_RULE = {ID[MIN]: 0, ID[MAX]: 9}             # anything else (MED, SM): 4


def root_operator_baseline(split: Split) -> float:
    """Accuracy of answering from the root operator alone: MIN -> 0, MAX -> 9, else 4."""
    hits = sum(ROOT_RULE.get(ids[1], 4) == label for ids, label in zip(split.ids, split.labels))
    return hits / max(len(split), 1)


def majority_baseline(split: Split, reference: Split | None = None) -> float:
    """Accuracy on `split` of always answering the most frequent label of `reference` (default: split)."""
    counts = Counter((reference or split).labels)
    if not counts:
        return 0.0
    majority = min(counts, key=lambda label: (-counts[label], label))  # ties: the smallest label
    return sum(label == majority for label in split.labels) / max(len(split), 1)
