"""Supernet strategies (darts, gdas, fixed): a mixer (alphas -> weights) attached to the mixed layers,
an optional architecture step, and a rule to pick a discrete architecture; one supernet per seed.

Besides its pick, each seed scores every homogeneous candidate and the pick inside the trained
supernet (one-hot mixing, shared weights) on the search's held-out slice: the evidence's ranking.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from pydantic import Field

from nasgraph import distributed
from nasgraph.config import StrictConfig
from nasgraph.model import GraphModule
from nasgraph.search.derive import choice_mixing
from nasgraph.search.evidence import SHARED_WEIGHTS, Evidence, Measured
from nasgraph.search.objective import penalized
from nasgraph.search.strategies.base import Strategy
from nasgraph.training.data import BatchStream
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.device import module_device, resolve_device, to_device
from nasgraph.training.losses import task_loss
from nasgraph.training.step import weighted
from nasgraph.training.rundir import RunDir


class AlphaConfig(StrictConfig):
    """Options of strategies that learn alphas."""

    alpha_lr: float = Field(3e-4, gt=0)
    alpha_weight_decay: float = Field(1e-3, ge=0)
    warmup: float = Field(0.0, ge=0, lt=1)        # share of the search steps with weights only, alphas frozen
    arch_every: int = Field(1, gt=0)              # one alpha step every N weight steps (search cost)


class SupernetStrategy(Strategy):
    has_arch_step = True
    skips_candidates = False     # True: a weight step may leave candidates out of the forward (GDAS)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.arch_opt: torch.optim.Optimizer | None = None

    # -- the mixer: alphas (G, C) -> weights (G, C) ----------------------------------------------
    def __call__(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        return self.mix(alpha, node)

    def mix(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        return alpha.softmax(dim=-1)

    def attach(self, model) -> None:
        """Called once the supernet exists (before any resume): this strategy becomes the mixer of every
        mixed layer, and its architecture optimizer takes the alphas."""
        for layer in model.mixed_layers().values():
            layer.mixer = self
        if self.has_arch_step and model.arch_parameters():
            self.arch_opt = torch.optim.Adam(model.arch_parameters(), lr=self.config.alpha_lr,
                                             betas=(0.5, 0.999), weight_decay=self.config.alpha_weight_decay)

    def before_step(self, step: int, total: int, epoch: float) -> None:
        pass

    def arch_active(self, step: int, epoch: float) -> bool:
        """Whether this weight step is preceded by an alpha step (after warm-up, every arch_every)."""
        return step >= self.config.warmup * self.total_steps and step % self.config.arch_every == 0

    # -- the architecture objective ------------------------------------------------------------------
    def objective(self, model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = task_loss(logits.float(), labels)
        term = self.search.objective.latency or self.search.objective.flops
        if term is None or self.cost is None or term.weight == 0:
            return loss
        expected = self.cost.expected(self.probabilities(model))
        return penalized(loss, expected, self.cost, term.weight, term.shape, term.target)

    def arch_step(self, model, train_batch, arch_batch, lr: float, weights: tuple[float, float] = (1.0, 1.0)) -> dict:
        """One alpha update on an arch batch (first order).

        Under torchrun the batches are this rank's shards and `weights` their loss weights
        (nasgraph.distributed.shard); the alpha gradients are averaged over the ranks, so every rank
        takes the step one process takes on the whole batch."""
        tokens, labels = arch_batch
        self.arch_opt.zero_grad(set_to_none=True)
        logits = model(tokens)
        loss = self.objective(model, logits, labels)
        alphas = model.arch_parameters()
        grads = torch.autograd.grad(weighted(loss, logits, weights[1]), alphas)
        for a, g in zip(alphas, distributed.all_reduce_mean(list(grads))):
            a.grad = g
        self.arch_opt.step()
        return {"arch_loss": distributed.weighted_mean(loss.item(), weights[1], loss.device)}

    # -- reading the alphas ----------------------------------------------------------------------------
    def probabilities(self, model) -> dict[str, torch.Tensor]:
        return {n: m.alpha.softmax(-1) for n, m in model.mixed_layers().items()}

    def metrics(self, model) -> dict:
        probs = {n: p.detach() for n, p in self.probabilities(model).items()}
        if not probs:
            return {}
        ent = [float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean() / math.log(p.shape[-1])) for p in probs.values()]
        out = {"alpha_entropy": sum(ent) / len(ent)}
        if self.cost is not None:
            out["expected_cost"] = float(self.cost.expected(probs))
        return out

    def snapshot(self, model) -> dict:
        return {"probs": {n: p.detach().tolist() for n, p in self.probabilities(model).items()}}

    def choose(self, model, **_) -> dict[str, list[int]]:
        """The discrete architecture: node -> chosen candidate index per group (argmax of alphas)."""
        return {n: m.alpha.argmax(-1).tolist() for n, m in model.mixed_layers().items()}

    def state_dict(self) -> dict:
        return {"arch_opt": self.arch_opt.state_dict() if self.arch_opt else None}

    def load_state_dict(self, state: dict) -> None:
        if self.arch_opt and state and state.get("arch_opt"):
            self.arch_opt.load_state_dict(state["arch_opt"])

    # -- the search: one supernet per seed -----------------------------------------------------------
    def run(self, ctx) -> Evidence:
        t0 = time.perf_counter()
        records = [type(self)(self.search, self.total_steps, self.cost).search_seed(ctx, seed)
                   for seed in self.search.seeds]
        measured = merge_measured(ctx, [r["measured"] for r in records], self.total_steps)
        return ctx.evidence(self.name, seeds=list(self.search.seeds), picks=[r["choice"] for r in records],
                            measured=measured, wall_seconds=time.perf_counter() - t0,
                            probabilities=[r["probs"] for r in records],
                            unit_scores=[r["scores"] for r in records if r.get("scores")] or None,
                            notes=["supernet scores: each architecture run inside the trained supernet with its "
                                   "shared weights (one-hot mixing), not trained on its own"])

    def search_seed(self, ctx, seed: int) -> dict:
        seed_dir = Path(ctx.out) / f"seed{seed}"
        done = RunDir.finished(seed_dir)
        if done is not None:
            return done
        run = RunDir(seed_dir, resume=ctx.resume and seed_dir.is_dir())
        self.progress = ctx.progress
        seed_everything(seed)
        splits = ctx.splits(seed)
        model = GraphModule(ctx.graph).to(resolve_device(ctx.train.device))   # before attach: masks follow alphas
        self.attach(model)
        train = ctx.train.model_copy(update={"seed": seed})
        result = fit(model, splits, train, run, steps=self.total_steps, strategy=self, resume=run.resuming,
                     desc=f"search {self.name} seed {seed}", progress=ctx.progress, task=ctx.task)
        distributed.debug_dump(f"seed{seed}-alphas", {n: m.alpha.tolist() for n, m in model.mixed_layers().items()})
        scored = ctx.score_split(splits)
        choice = self.choose(model, accuracy=lambda m: ctx.score(m, scored),
                             finetune=lambda m, n: finetune(m, splits, train, n))
        measured = self.one_shot(ctx, model, choice, scored)
        record = {"seed": seed, "choice": choice, "labels": ctx.label_choice(choice),
                  "cost": ctx.cost.of_choice(choice), "cost_kind": ctx.cost.kind, "final": result,
                  "probs": {n: p.detach().tolist() for n, p in self.probabilities(model).items()},
                  "scores": getattr(self, "scores", {}), **self.metrics(model), "measured": measured}
        record = distributed.from_rank0(lambda: record)   # torchrun: every rank returns what rank 0 writes
        run.write_json("result.json", record)
        return record

    def one_shot(self, ctx, model, choice, split) -> list[dict]:
        """Score each homogeneous candidate and the pick inside the supernet (one-hot, shared weights)."""
        archs = [(ctx.homogeneous(l), "homogeneous") for l in ctx.homogeneous_labels()]
        archs = [(c, k) for c, k in archs if c is not None]
        if all(c != choice for c, _ in archs):
            archs.append((choice, "pick"))
        out = []
        for c, kind in archs:
            with choice_mixing(model, c):
                out.append({"choice": c, "kind": kind, "score": ctx.score(model, split), "source": SHARED_WEIGHTS,
                            "eval_n": len(split)})
        return out


def merge_measured(ctx, per_seed: list[list[dict]], steps: int) -> list[Measured]:
    """One Measured per architecture seen, with one score per seed that measured it; "source" and
    "eval_n" of a record go into its detail as they are, its other numbers (e.g. "kl") as a list."""
    merged: dict[str, Measured] = {}
    for records in per_seed:
        for r in records:
            key = repr(sorted(r["choice"].items()))
            if key not in merged:
                merged[key] = ctx.measured(r["choice"], [], r.get("steps", steps), r["kind"], {})
            m = merged[key]
            m.scores.append(r["score"])
            for k, v in r.items():
                if k in ("source", "eval_n"):
                    m.detail[k] = v
                elif k not in ("choice", "kind", "score", "steps"):
                    m.detail.setdefault(k, []).append(v)
    return list(merged.values())


def finetune(model, splits, train_spec, steps: int) -> None:
    """A few plain weight steps (DARTFormer prune rounds)."""
    opt = torch.optim.AdamW(model.weight_parameters(), lr=train_spec.lr * 0.5, weight_decay=train_spec.weight_decay)
    stream = BatchStream(splits["train"], train_spec.batch_size, train_spec.seed + 7)
    model.train()
    device = module_device(model)
    for _ in range(steps):
        x, y = to_device(stream.next(), device)
        opt.zero_grad(set_to_none=True)
        task_loss(model(x), y).backward()
        opt.step()
