"""Synthetic tasks: `tiny` (a seconds-long sanity task for tests) and `assoc_recall` (needs global attention).

Both are generated from the seed, deduplicated (no example is in two splits) and tokenised as
space-separated symbols, so `Tokenizer.encode(" ".join(symbols))` gives the task's ids.
"""
from __future__ import annotations

import random
from typing import Callable

from pydantic import Field

from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.tasks.base import CLS_ID, MAX_EXAMPLES, SPECIALS, SPLITS, Split, Task, TaskConfig, TaskData
from nasgraph.tasks.registry import register
from nasgraph.tasks.tokenize import Tokenizer

FILLER = "."
MAX_STALE_DRAWS = 100_000


def unique_splits(draw: Callable[[], tuple[list[int], int]], counts: list[int], kind: str) -> list[Split]:
    """Call draw() until sum(counts) distinct sequences exist; cut them into Splits of those sizes."""
    found: dict[tuple[int, ...], int] = {}
    stale, total = 0, sum(counts)
    while len(found) < total:
        ids, label = draw()
        key = tuple(ids)
        if key in found:
            stale += 1
            if stale > MAX_STALE_DRAWS:
                raise NasgraphError(f"task '{kind}': only {len(found)} distinct examples of {total} asked; "
                                    f"lengthen the sequences, add symbols or ask for fewer examples")
            continue
        found[key], stale = label, 0
    items = list(found.items())
    splits, start = [], 0
    for n in counts:
        splits.append(Split([list(k) for k, _ in items[start:start + n]], [v for _, v in items[start:start + n]]))
        start += n
    return splits


class SyntheticConfig(TaskConfig):
    n_train: int = Field(2000, ge=1, le=MAX_EXAMPLES)
    n_val: int = Field(200, ge=1, le=MAX_EXAMPLES)
    n_test: int = Field(200, ge=1, le=MAX_EXAMPLES)


class SyntheticTask(Task):
    """Shared load(): a seeded draw() per example, then unique_splits()."""

    def vocab(self) -> list[str]:
        raise NotImplementedError

    def draw(self, rng: random.Random) -> tuple[list[int], int]:
        """One example: (ids starting with <cls>, label)."""
        raise NotImplementedError

    def vocab_size(self) -> int:
        return len(self.vocab())

    def class_names(self) -> list[str]:
        return [str(i) for i in range(self.num_classes())]

    def load(self) -> TaskData:
        c = self.config
        rng = random.Random(c.seed)
        parts = unique_splits(lambda: self.draw(rng), [c.n_train, c.n_val, c.n_test], self.kind)
        tok = Tokenizer("symbols", c.max_len, vocab=self.vocab())
        return TaskData(splits=dict(zip(SPLITS, parts)), vocab=self.vocab(),
                        class_names=self.class_names(), tokenizer=tok.to_dict())


class TinyConfig(SyntheticConfig):
    kind: str = "tiny"
    max_len: int = Field(16, ge=4)
    min_len: int = Field(3, ge=1)                  # shortest sequence, <cls> not counted
    n_symbols: int = Field(6, ge=2, le=26)         # 'a' (the marker) and n_symbols - 1 others


@register("tiny")
class TinyTask(SyntheticTask):
    """Label 1 iff the marker 'a' occurs (1 or 2 times) among random letters; balanced classes."""

    Config = TinyConfig

    def check(self) -> None:
        if self.config.min_len > self.config.max_len - 1:
            raise ConfigError(f"task 'tiny': min_len {self.config.min_len} must be <= max_len - 1 "
                              f"({self.config.max_len - 1})", key="min_len")

    def vocab(self) -> list[str]:
        return SPECIALS + [chr(ord("a") + i) for i in range(self.config.n_symbols)]

    def num_classes(self) -> int:
        return 2

    def draw(self, rng: random.Random) -> tuple[list[int], int]:
        c, marker = self.config, len(SPECIALS)
        length = rng.randint(c.min_len, c.max_len - 1)
        body = [rng.randrange(marker + 1, marker + c.n_symbols) for _ in range(length)]
        label = int(rng.random() < 0.5)
        if label:
            for pos in rng.sample(range(length), min(length, rng.randint(1, 2))):
                body[pos] = marker
        return [CLS_ID] + body, label


class AssocRecallConfig(SyntheticConfig):
    kind: str = "assoc_recall"
    max_len: int = Field(128, ge=4)                # every sequence has exactly max_len ids
    n_pairs: int = Field(8, ge=1)                  # key-value pairs per sequence (distinct keys)
    n_keys: int = Field(16, ge=2)
    n_values: int = Field(8, ge=2)                 # = number of classes
    min_distance: int | None = Field(None, ge=1)   # pairs to <cls> and to the query; None: max_len // 4
    n_train: int = Field(20_000, ge=1, le=MAX_EXAMPLES)
    n_val: int = Field(1_000, ge=1, le=MAX_EXAMPLES)
    n_test: int = Field(1_000, ge=1, le=MAX_EXAMPLES)


@register("assoc_recall")
class AssocRecallTask(SyntheticTask):
    """Associative recall: <cls> . . k3:v5 . k0:v1 . . q3 -> 5 (the value stored under the queried key).

    Each pair is one token "k<key>:v<value>" (keys distinct within a sequence), at random positions of
    the middle of the sequence, at least min_distance tokens from <cls> (position 0) and from the query
    token q<key> (the last position); every other token is the filler ".". Any pair may be queried.
    Two layers of softmax attention solve it (<cls> reads the query, then the pair whose key matches,
    wherever it is). A model whose receptive field from <cls> (layers x window, for local attention) is
    below max_len - 1 never sees the query and scores chance, 1 / n_values; the pairs within its reach
    give no hint, since any of them may be asked.
    """

    Config = AssocRecallConfig

    @property
    def distance(self) -> int:
        return self.config.min_distance or max(1, self.config.max_len // 4)

    def slots(self) -> range:
        """Positions a pair may occupy: >= distance from <cls> (0) and from the query (max_len - 1)."""
        return range(self.distance, self.config.max_len - self.distance)

    def check(self) -> None:
        c = self.config
        if c.n_pairs > c.n_keys:
            raise ConfigError(f"task 'assoc_recall': n_pairs {c.n_pairs} > n_keys {c.n_keys}; keys are "
                              f"distinct within a sequence", key="n_pairs")
        if len(self.slots()) < c.n_pairs:
            raise ConfigError(f"task 'assoc_recall': {c.n_pairs} pairs need max_len >= "
                              f"{2 * self.distance + c.n_pairs} with min_distance {self.distance} "
                              f"(got max_len {c.max_len})", key="max_len")

    def vocab(self) -> list[str]:
        c = self.config
        pairs = [f"k{k}:v{v}" for k in range(c.n_keys) for v in range(c.n_values)]
        return SPECIALS + pairs + [f"q{k}" for k in range(c.n_keys)] + [FILLER]

    def num_classes(self) -> int:
        return self.config.n_values

    def vocab_size(self) -> int:                   # without building n_keys x n_values strings
        c = self.config
        return len(SPECIALS) + c.n_keys * c.n_values + c.n_keys + 1

    def draw(self, rng: random.Random) -> tuple[list[int], int]:
        c = self.config
        pair0, query0 = len(SPECIALS), len(SPECIALS) + c.n_keys * c.n_values
        ids = [CLS_ID] + [query0 + c.n_keys] * (c.max_len - 1)       # <cls>, then filler
        keys = rng.sample(range(c.n_keys), c.n_pairs)
        values = [rng.randrange(c.n_values) for _ in keys]
        for pos, key, value in zip(rng.sample(self.slots(), c.n_pairs), keys, values):
            ids[pos] = pair0 + key * c.n_values + value
        asked = rng.randrange(c.n_pairs)
        ids[-1] = query0 + keys[asked]
        return ids, values[asked]
