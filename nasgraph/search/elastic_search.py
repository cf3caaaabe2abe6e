"""Search over the sub-networks of an elastic supernet under a budget: evolution (HAT / mixFormer:
the best `parents` of each generation breed the next by mutation and crossover) or its baseline,
uniform random sampling of as many feasible sub-networks. Both score with the same function (the
supernet's validation metric) and return every sub-network scored; the Pareto front is taken from it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable

from nasgraph.errors import NasgraphError
from nasgraph.graph.subnet import SubNet, crossover, mutate, sample, smallest

Choice = dict[str, list[int]]


@dataclass
class Scored:
    sub: SubNet
    score: float
    costs: dict[str, float]          # flops, params, and latency_ms when a predictor is fit
    generation: int


def encode(sub: SubNet, space: dict) -> Choice:
    """A sub-network as indices into the space (the evidence's Choice form)."""
    return {"d_model": [space["d_model"].index(sub.d_model)], "n_heads": [space["n_heads"].index(sub.n_heads)],
            "n_layers": [space["n_layers"].index(sub.n_layers)],
            "ffn_mult": [space["ffn_mult"][i].index(m) for i, m in enumerate(sub.ffn_mult)],
            "attention": list(sub.attention)}


def decode(choice: Choice, space: dict) -> SubNet:
    k = space["n_layers"][choice["n_layers"][0]]
    return SubNet(space["d_model"][choice["d_model"][0]], space["n_heads"][choice["n_heads"][0]],
                  tuple(space["ffn_mult"][i][j] for i, j in enumerate(choice["ffn_mult"][:k])),
                  tuple(choice["attention"][:k]))


def pareto_front(points: list[Scored], cost: str) -> list[Scored]:
    """The points no other point beats on both the score (higher) and `cost` (lower), cheapest first."""
    front = [p for p in points if not any(q.score >= p.score and q.costs[cost] <= p.costs[cost]
                                          and (q.score > p.score or q.costs[cost] < p.costs[cost]) for q in points)]
    return sorted(front, key=lambda p: p.costs[cost])


class Search:
    """`score(sub)` (higher is better) and `costs(sub)` are cached per sub-network; `feasible` reads
    the budget {cost key: limit} off the costs."""

    def __init__(self, space: dict, score: Callable[[SubNet], float], costs: Callable[[SubNet], dict],
                 budget: dict[str, float], rng: random.Random, progress: Callable[[], None] | None = None):
        self.space, self._score, self._costs, self.budget, self.rng = space, score, costs, budget, rng
        self.scored: dict[SubNet, Scored] = {}
        self._cost_cache: dict[SubNet, dict] = {}
        self.progress = progress

    def costs(self, sub: SubNet) -> dict:
        if sub not in self._cost_cache:
            self._cost_cache[sub] = self._costs(sub)
        return self._cost_cache[sub]

    def feasible(self, sub: SubNet) -> bool:
        costs = self.costs(sub)
        return all(costs[k] <= limit for k, limit in self.budget.items())

    def score(self, sub: SubNet, generation: int) -> Scored:
        if sub not in self.scored:
            self.scored[sub] = Scored(sub, self._score(sub), self.costs(sub), generation)
            if self.progress:
                self.progress()
        return self.scored[sub]

    def feasible_sample(self, tries: int = 500) -> SubNet:
        for _ in range(tries):
            sub = sample(self.space, self.rng)
            if self.feasible(sub):
                return sub
        raise NasgraphError(f"no sub-network within the budget {self.budget} in {tries} random draws: raise the "
                            f"budget (the smallest sub-network costs about {self._smallest_costs()})")

    def _smallest_costs(self) -> dict:
        return {k: round(v, 4) for k, v in self.costs(smallest(self.space)).items()}

    def random_search(self, n: int) -> list[Scored]:
        """The baseline: `n` distinct feasible random sub-networks (fewer when the space has fewer)."""
        for _ in range(n * 20):
            if len(self.scored) >= n:
                break
            self.score(self.feasible_sample(), 0)
        return list(self.scored.values())

    def evolve(self, population: int, generations: int, parents: int, mutation_prob: float) -> list[Scored]:
        pop = list(dict.fromkeys(self.feasible_sample() for _ in range(population)))
        for gen in range(generations):
            ranked = sorted((self.score(s, gen) for s in pop), key=lambda p: -p.score)
            if gen == generations - 1:
                break
            elite = [p.sub for p in ranked[:parents]]
            children: list[SubNet] = []
            for _ in range(50 * population):
                if len(elite) + len(children) >= population:
                    break
                child = mutate(self.rng.choice(elite), self.space, self.rng, mutation_prob) \
                    if self.rng.random() < 0.5 or len(elite) < 2 else crossover(*self.rng.sample(elite, 2), self.rng)
                if child not in elite and child not in children and child not in self.scored and self.feasible(child):
                    children.append(child)
            pop = elite + children
        return list(self.scored.values())
