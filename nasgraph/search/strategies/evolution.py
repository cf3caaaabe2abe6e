"""mixFormer / HAT search over an elastic space (d_model, n_heads, n_layers, per-layer ffn.mult and
attention type): a weight-sharing supernet trained by the sandwich rule, a latency predictor fit to
ONNX Runtime latencies of sampled sub-networks, then evolution (or its baseline, random search) over
sub-networks scored by the supernet's metric on the search's held-out slice, under a budget.

Writes into the run folder: supernet.pt (shared weights), metrics.jsonl (sandwich training),
latency.json (the measured sub-networks, the predictor, its held-out error).
"""
from __future__ import annotations

import json
import random
import time
from typing import Literal

import torch
from pydantic import Field, model_validator
from tqdm.auto import tqdm

from nasgraph.config import StrictConfig
from nasgraph.elastic import ElasticSupernet
from nasgraph.errors import ConfigError, NasgraphError
from nasgraph.graph.elastic import compile_subnet
from nasgraph.graph.subnet import SubNet, attention_candidates, elastic, largest, sample, smallest
from nasgraph.graph.summary import summarize
from nasgraph.model import GraphModule
from nasgraph.outfile import atomic_write
from nasgraph.search.elastic_search import Search, encode
from nasgraph.search.evidence import SHARED_WEIGHTS, Evidence, Measured
from nasgraph.search.latency_model import LatencyModel, cross_validated_error
from nasgraph.search.sandwich import train_sandwich
from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import register
from nasgraph.training.loop import seed_everything
from nasgraph.training.rundir import RunDir


class Budget(StrictConfig):
    """At most this much per sub-network: predicted ONNX Runtime latency, FLOPs (T = max_len) or parameters."""

    latency_ms: float | None = Field(None, gt=0)
    flops: float | None = Field(None, gt=0)
    params: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self):
        if sum(v is not None for v in (self.latency_ms, self.flops, self.params)) != 1:
            raise ValueError("give exactly one of latency_ms, flops, params")
        return self

    def limits(self) -> dict[str, float]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class EvolutionConfig(StrictConfig):
    method: Literal["evolution", "random"] = "evolution"   # random: the baseline, as many sub-networks
    population: int = Field(16, ge=2)
    generations: int = Field(4, gt=0)
    parents: int = Field(6, ge=2)                  # the best this many of a generation breed the next
    mutation_prob: float = Field(0.3, gt=0, le=1)
    sandwich_random: int = Field(2, ge=0)          # random sub-networks per step beside largest and smallest
    budget: Budget | None = None
    latency_samples: int = Field(16, ge=0)         # sub-networks timed with ONNX Runtime (0: no latency axis)
    latency_seq_len: int | None = Field(None, gt=0)  # T of the timing (default: task.max_len)
    latency_batch: int = Field(1, gt=0)
    latency_threads: int = Field(1, gt=0)
    latency_percentile: float = Field(10, gt=0, le=100)   # of the timed calls: low ones are robust to other jobs

    @property
    def evaluations(self) -> int:
        """Sub-networks scored by evolution; random search scores as many."""
        return self.population + (self.generations - 1) * (self.population - self.parents)


@register("evolution")
class Evolution(Strategy):
    Config = EvolutionConfig
    elastic = True

    @classmethod
    def check(cls, config, search, choice_sizes: list[int]) -> None:
        if len(search.seeds) > 1:
            raise ConfigError("evolution trains one elastic supernet: give one seed", key="seeds")
        if config.parents >= config.population:
            raise ConfigError(f"parents {config.parents} must be fewer than the population {config.population}",
                              key="parents")
        if config.budget is not None and config.budget.latency_ms is not None and config.latency_samples < 4:
            raise ConfigError(f"a latency budget needs a latency predictor: latency_samples {config.latency_samples} "
                              f"is below 4", key="latency_samples")

    def run(self, ctx) -> Evidence:
        space = elastic(ctx.graph)
        if space is None:
            raise NasgraphError("strategy 'evolution' searches elastic dimensions: give d_model, n_heads, n_layers "
                                "or ffn.mult as {choices: [...]}")
        t0, seed, cfg = time.perf_counter(), self.search.seeds[0], self.config
        seed_everything(seed)
        candidates = attention_candidates(ctx.graph)
        build = lambda sub: compile_subnet(ctx.doc, ctx.graph, sub)  # noqa: E731
        supernet = ElasticSupernet(GraphModule(ctx.graph), space, build)
        splits = ctx.splits(seed)
        self.train_supernet(ctx, supernet, splits["train"], seed)
        rng = random.Random(seed + 1)
        predictor = self.fit_latency(ctx, supernet, candidates, rng) if cfg.latency_samples else None

        def costs(sub) -> dict:
            s = summarize(build(sub))
            out = {"flops": float(s.flops_shared), "params": float(s.params_total)}
            if predictor is not None:
                out["latency_ms"] = predictor.predict(sub, candidates)
            return out

        scored_split = ctx.score_split(splits)
        bar = tqdm(total=cfg.evaluations, desc=f"search {cfg.method}", disable=not ctx.progress, leave=False)
        search = Search(space, lambda sub: ctx.score(supernet.extract(sub), scored_split), costs,
                        cfg.budget.limits() if cfg.budget else {}, random.Random(seed + 2), progress=bar.update)
        points = search.evolve(cfg.population, cfg.generations, cfg.parents, cfg.mutation_prob) \
            if cfg.method == "evolution" else search.random_search(cfg.evaluations)
        bar.close()
        cost_key = "latency_ms" if predictor is not None else "flops"
        best = max(points, key=lambda p: (p.score, -p.costs[cost_key]))
        measured = [Measured(choice=encode(p.sub, space), labels={"subnet": [p.sub.label(candidates)]},
                             scores=[p.score], cost=p.costs[cost_key], steps=ctx.steps,
                             kind="pick" if p is best else "candidate",
                             detail={"subnet": p.sub.to_json(), **p.costs, "generation": p.generation,
                                     "source": SHARED_WEIGHTS, "eval_n": len(scored_split)}) for p in points]
        ends = [search.costs(smallest(space)), search.costs(largest(space))]
        return Evidence(strategy=self.name, metric=ctx.task.score_name, cost_kind=cost_key,
                        cost_range=(ends[0][cost_key], ends[1][cost_key]),
                        candidates={k: [str(v) for v in space[k]] for k in ("d_model", "n_heads", "n_layers")},
                        seeds=[seed], picks=[encode(best.sub, space)], measured=measured,
                        wall_seconds=time.perf_counter() - t0, chosen=encode(best.sub, space),
                        notes=[f"{cfg.method}: {len(points)} sub-networks scored inside the sandwich-trained supernet "
                               f"(shared weights, not trained on their own)"
                               + (f", within the budget {cfg.budget.limits()}" if cfg.budget else "")])

    def train_supernet(self, ctx, supernet: ElasticSupernet, train_split, seed: int) -> None:
        """Sandwich training, or the weights of a finished earlier run of this search (--resume)."""
        path = ctx.out / "supernet.pt"
        if ctx.resume and path.exists():
            supernet.supernet.load_state_dict(torch.load(path, weights_only=True))
            return
        run = RunDir(ctx.out, resume=True)
        run.truncate_logs(0)                                   # an interrupted earlier training starts over
        train_sandwich(supernet, train_split, ctx.train, ctx.steps, n_random=self.config.sandwich_random, seed=seed,
                       log=lambda rec: run.log("metrics.jsonl", rec), progress=ctx.progress,
                       desc="sandwich supernet")
        atomic_write(path, lambda f: torch.save(supernet.supernet.state_dict(), f))   # a killed save: no half file

    def fit_latency(self, ctx, supernet: ElasticSupernet, candidates, rng: random.Random) -> LatencyModel:
        """Time `latency_samples` sub-networks (smallest and largest among them) with ONNX Runtime and fit
        the predictor; kept in latency.json (a resumed search reuses the timings)."""
        cfg, path = self.config, ctx.out / "latency.json"
        if ctx.latency_probe is None:
            raise NasgraphError("strategy 'evolution': no latency measurement available (set latency_samples: 0)")
        done = json.loads(path.read_text()) if ctx.resume and path.exists() else {"samples": []}
        subs = [SubNet.from_json(s["subnet"]) for s in done["samples"]]
        ms = [s["ms"] for s in done["samples"]]
        space = supernet.space
        wanted = [smallest(space, tuple(rng.randrange(n) for n in space["attention"])),
                  largest(space, tuple(rng.randrange(n) for n in space["attention"]))]
        while len(wanted) < cfg.latency_samples:
            wanted.append(sample(space, rng))
        for sub in tqdm(wanted[len(subs):], desc="latency samples", disable=not ctx.progress, leave=False):
            subs.append(sub)
            ms.append(ctx.latency_probe(supernet.module(sub), batch=cfg.latency_batch, seq_len=cfg.latency_seq_len,
                                        threads=cfg.latency_threads, percentile=cfg.latency_percentile))
            record = {"samples": [{"subnet": s.to_json(), "ms": m} for s, m in zip(subs, ms)]}
            RunDir(ctx.out, resume=True).write_json("latency.json", record)
        model = LatencyModel.fit(subs, ms, candidates)
        record = {"samples": [{"subnet": s.to_json(), "ms": m} for s, m in zip(subs, ms)], "model": model.to_json(),
                  "cv_median_rel_error": cross_validated_error(subs, ms, candidates),
                  "batch": cfg.latency_batch, "seq_len": cfg.latency_seq_len or ctx.graph.graph["ctx"]["max_len"],
                  "threads": cfg.latency_threads, "percentile": cfg.latency_percentile}
        RunDir(ctx.out, resume=True).write_json("latency.json", record)
        return model
