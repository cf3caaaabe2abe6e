"""Multi-query associative recall (MQAR; Zoology, Arora et al. 2023, arXiv 2312.04927), causal form.

    <cls> k12 v3 k7 v40 ... k5 v9 | . . k7 . . . k12 . k5 . .
          n_pairs key-value pairs   queries at random places among filler

Each query is a key of the sequence's pairs; the model must emit its value at the query's position
(the label there is the value's token id; every other position is IGNORE). Keys and values come
from disjoint vocabularies, keys are distinct within a sequence, and each key is asked at most once
(n_queries <= n_pairs). Query places: `query_gaps: uniform` (default) spreads them over the whole
query region, so long and short recall distances both occur; `power_law` is Zoology's placement,
P(gap g after the pairs) proportional to (g + 1)^(power_a - 1), which at its power_a 0.01 puts most
queries close to the pairs (at T=256 and 8 pairs: median gap 17, uniform 117). A causal model must
store all pairs as it reads them: recurrent types with a small state fail as n_pairs grows, softmax
does not.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import random
from typing import Literal

from pydantic import Field

from nasgraph.errors import ConfigError
from nasgraph.tasks.base import CLS_ID, IGNORE, SPECIALS, Split
from nasgraph.tasks.registry import register
from nasgraph.tasks.synthetic import FILLER, SyntheticConfig, SyntheticTask


class MQARConfig(SyntheticConfig):
    kind: str = "mqar"
    max_len: int = Field(128, ge=6)                # <cls> + pairs + query region
    n_pairs: int = Field(8, ge=1)
    n_queries: int | None = Field(None, ge=1)      # None: every pair is asked (n_pairs queries)
    n_keys: int = Field(64, ge=2)                  # key vocabulary
    n_values: int = Field(64, ge=2)                # value vocabulary
    query_gaps: Literal["uniform", "power_law"] = "uniform"  # where the queries fall after the pairs
    power_a: float = Field(0.01, gt=0, le=1)       # power_law: P(gap g) ~ (g + 1)^(power_a - 1) (Zoology)
    n_train: int = Field(10_000, ge=1)
    n_val: int = Field(500, ge=1)
    n_test: int = Field(500, ge=1)


@register("mqar")
class MQARTask(SyntheticTask):
    """Recall the value of each queried key; headline metric: answer accuracy (per query)."""

    Config = MQARConfig
    output = "token"
    metric = "answer_acc"

    @property
    def n_queries(self) -> int:
        return self.config.n_queries or self.config.n_pairs

    def check(self) -> None:
        c = self.config
        if c.n_pairs > c.n_keys:
            raise ConfigError(f"task 'mqar': n_pairs {c.n_pairs} > n_keys {c.n_keys}; keys are distinct "
                              f"within a sequence", key="n_pairs")
        if self.n_queries > c.n_pairs:
            raise ConfigError(f"task 'mqar': n_queries {self.n_queries} > n_pairs {c.n_pairs}; each key is "
                              f"asked at most once", key="n_queries")
        need = 1 + 2 * c.n_pairs + self.n_queries
        if c.max_len < need:
            raise ConfigError(f"task 'mqar': {c.n_pairs} pairs and {self.n_queries} queries need max_len >= "
                              f"{need} (got {c.max_len})", key="max_len")

    def vocab(self) -> list[str]:
        c = self.config
        return SPECIALS + [FILLER] + [f"k{k}" for k in range(c.n_keys)] + [f"v{v}" for v in range(c.n_values)]

    def vocab_size(self) -> int:                   # without building n_keys + n_values strings
        return len(SPECIALS) + 1 + self.config.n_keys + self.config.n_values

    def num_classes(self) -> int:
        return self.vocab_size()                   # the LM head predicts any token

    def class_names(self) -> list[str]:
        return self.vocab()

    def draw(self, rng: random.Random) -> tuple[list[int], list[int]]:
        c = self.config
        filler, key0 = len(SPECIALS), len(SPECIALS) + 1
        value0 = key0 + c.n_keys
        keys = rng.sample(range(c.n_keys), c.n_pairs)
        values = [rng.randrange(c.n_values) for _ in keys]
        ids = [CLS_ID]
        for k, v in zip(keys, values):
            ids += [key0 + k, value0 + v]
        start = len(ids)
        ids += [filler] * (c.max_len - start)
        labels = [IGNORE] * c.max_len
        asked = rng.sample(range(c.n_pairs), self.n_queries)
        for pos, i in zip(sorted(self.query_places(rng, start)), asked):
            ids[pos], labels[pos] = key0 + keys[i], value0 + values[i]
        return ids, labels

    @functools.cached_property
    def gap_weights(self) -> list[float]:
        """power_law: cumulative weights of the gaps 0 .. max_len - 2 n_pairs - 2 after the pairs."""
        c = self.config
        return list(itertools.accumulate((g + 1) ** (c.power_a - 1) for g in range(c.max_len - 1 - 2 * c.n_pairs)))

    def query_places(self, rng: random.Random, start: int) -> list[int]:
        """n_queries distinct positions in start .. max_len - 1, uniform or power-law in the gap."""
        if self.config.query_gaps == "uniform":
            return rng.sample(range(start, self.config.max_len), self.n_queries)
        cum = self.gap_weights
        places: set[int] = set()
        while len(places) < self.n_queries:             # without replacement: redraw a taken gap
            places.add(start + min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1))
        return list(places)

    def metrics_from(self, loss_sum: float, correct: int, n: int, split: Split | None = None) -> dict:
        metrics = super().metrics_from(loss_sum, correct, n, split)
        metrics["answer_acc"] = metrics["acc"]     # labelled positions are exactly the answers
        return metrics
