"""`local_motif`: which of K short motifs occurs in a long random sequence; only local structure matters.

    <cls> c a f b h d a g ... e b d ... -> 2     (motif 2 = "e b d" occurs once, no other motif does)

The label depends on one window of `motif_len` adjacent symbols anywhere in the sequence, so a local
attention with a small window (and mean pooling) can solve it as well as full softmax attention at a
fraction of the cost: the task where a cost-aware search must pick the cheap type. Accidental
occurrences of any motif in the random background are broken before the planted one is inserted.
"""
from __future__ import annotations

import random
from functools import cached_property

from pydantic import Field

from nasgraph.errors import ConfigError
from nasgraph.tasks.base import CLS_ID, SPECIALS
from nasgraph.tasks.registry import register
from nasgraph.tasks.synthetic import SyntheticConfig, SyntheticTask


class LocalMotifConfig(SyntheticConfig):
    kind: str = "local_motif"
    max_len: int = Field(512, ge=8)          # every sequence has exactly max_len ids (<cls> included)
    n_symbols: int = Field(8, ge=3, le=26)   # background alphabet 'a', 'b', ...
    motif_len: int = Field(3, ge=2)
    n_motifs: int = Field(4, ge=2)           # = number of classes
    n_train: int = Field(20_000, ge=1)
    n_val: int = Field(1_000, ge=1)
    n_test: int = Field(1_000, ge=1)


@register("local_motif")
class LocalMotifTask(SyntheticTask):
    """Label = index of the one motif planted in random symbols (motifs drawn once from task.seed)."""

    Config = LocalMotifConfig

    def check(self) -> None:
        c = self.config
        if c.n_motifs > c.n_symbols ** c.motif_len // 2:
            raise ConfigError(f"task 'local_motif': n_motifs {c.n_motifs} is too many for {c.n_symbols} "
                              f"symbols of length {c.motif_len}", key="n_motifs")
        if c.motif_len > c.max_len - 1:
            raise ConfigError(f"task 'local_motif': motif_len {c.motif_len} must be < max_len {c.max_len}",
                              key="motif_len")

    def vocab(self) -> list[str]:
        return SPECIALS + [chr(ord("a") + i) for i in range(self.config.n_symbols)]

    def num_classes(self) -> int:
        return self.config.n_motifs

    @cached_property
    def motifs(self) -> list[tuple[int, ...]]:
        c, first = self.config, len(SPECIALS)
        rng, found = random.Random(f"motifs-{c.seed}"), []
        while len(found) < c.n_motifs:
            m = tuple(first + rng.randrange(c.n_symbols) for _ in range(c.motif_len))
            if m not in found:
                found.append(m)
        return found

    def draw(self, rng: random.Random) -> tuple[list[int], int]:
        c, first = self.config, len(SPECIALS)
        motifs = self.motifs
        body = [first + rng.randrange(c.n_symbols) for _ in range(c.max_len - 1)]
        k = c.motif_len
        for i in range(len(body) - k + 1):          # break accidental occurrences, left to right
            while tuple(body[i:i + k]) in motifs:
                body[i + k - 1] = first + rng.randrange(c.n_symbols)
        label = rng.randrange(c.n_motifs)
        while True:                                  # plant one; it must not complete another motif
            pos = rng.randrange(len(body) - k + 1)
            trial = body[:pos] + list(motifs[label]) + body[pos + k:]
            window = trial[max(0, pos - k + 1):pos + 2 * k - 1]
            hits = {m for j in range(len(window) - k + 1) for m in [tuple(window[j:j + k])] if m in motifs}
            if hits == {motifs[label]}:
                return [CLS_ID] + trial, label
