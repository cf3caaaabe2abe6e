"""`local_motif`: which of K short motifs occurs most often in a long random sequence; only local structure matters.

    <cls> c a f b h d a g ... e b d ... e b d ... a g c ... -> 2   (motif 2 "e b d" planted most often)

The label motif is planted `n_planted` times, every other motif 0..`n_distractor` times (fewer, so the
label is unique), at non-overlapping places with at least one background symbol between two plants;
accidental occurrences of any motif in the background are broken, so each motif occurs exactly as
often as planted. The label depends only on windows of `motif_len` adjacent symbols, so a local
attention with a small window (and mean pooling, which counts them) can solve it as well as full
softmax attention at a fraction of the cost: the task where a cost-aware search must pick the cheap
type. The default (one plant, no distractor) is a 1/T signal under mean pooling: at long max_len it
needs a long training; `n_planted` densifies it without making it any less local.
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
    n_planted: int = Field(1, ge=1)          # occurrences of the label motif
    n_distractor: int = Field(0, ge=0)       # each other motif occurs 0..n_distractor times (< n_planted)
    n_train: int = Field(20_000, ge=1)
    n_val: int = Field(1_000, ge=1)
    n_test: int = Field(1_000, ge=1)


@register("local_motif")
class LocalMotifTask(SyntheticTask):
    """Label = index of the motif planted most often in random symbols (motifs drawn once from task.seed)."""

    Config = LocalMotifConfig

    def check(self) -> None:
        c = self.config
        if c.n_motifs > c.n_symbols ** c.motif_len // 2:
            raise ConfigError(f"task 'local_motif': n_motifs {c.n_motifs} is too many for {c.n_symbols} "
                              f"symbols of length {c.motif_len}", key="n_motifs")
        if c.n_distractor >= c.n_planted:
            raise ConfigError(f"task 'local_motif': n_distractor {c.n_distractor} must be below n_planted "
                              f"{c.n_planted} (valid: 0..{c.n_planted - 1}), else the label is ambiguous",
                              key="n_distractor")
        need = self.max_plants * (c.motif_len + 1)
        if need > c.max_len - 1:
            raise ConfigError(f"task 'local_motif': max_len {c.max_len} is too short for {self.max_plants} "
                              f"plants of {c.motif_len} symbols plus a separator (valid: max_len >= {need + 1})",
                              key="max_len")

    @property
    def max_plants(self) -> int:
        c = self.config
        return c.n_planted + (c.n_motifs - 1) * c.n_distractor

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
        c, first, k = self.config, len(SPECIALS), self.config.motif_len
        label = rng.randrange(c.n_motifs)
        plants = [m for m in range(c.n_motifs)
                  for _ in range(c.n_planted if m == label else rng.randint(0, c.n_distractor))]
        rng.shuffle(plants)
        n = c.max_len - 1
        # non-overlapping starts, a free symbol after each plant: stars and bars over the spare room
        spare = n - len(plants) * (k + 1)
        starts = [x + i * (k + 1) for i, x in enumerate(sorted(rng.randint(0, spare) for _ in plants))]
        body = [first + rng.randrange(c.n_symbols) for _ in range(n)]
        planted = set()
        for s, m in zip(starts, plants):
            body[s:s + k] = self.motifs[m]
            planted.update(range(s, s + k))
        motifs, own = set(self.motifs), set(starts)
        clean = False
        while not clean:        # break every motif window that is not a plant (each holds a free symbol)
            clean = True
            for i in range(n - k + 1):
                if i not in own and tuple(body[i:i + k]) in motifs:
                    free = [j for j in range(i, i + k) if j not in planted]
                    body[rng.choice(free)] = first + rng.randrange(c.n_symbols)
                    clean = False
        return [CLS_ID] + body, label
