"""The strategy contract: a mixer (alphas -> weights), an optional architecture step, and a rule to
pick a discrete architecture. Strategies are swappable: the supernet and the loop do not change."""
from __future__ import annotations

import math
from typing import ClassVar

import torch

from nasgraph.search.objective import CostTable, penalized
from nasgraph.training.losses import task_loss


class Strategy:
    name: ClassVar[str] = ""
    has_arch_step: ClassVar[bool] = True

    def __init__(self, search, total_steps: int, cost: CostTable | None = None):
        self.search, self.total_steps, self.cost = search, total_steps, cost
        self.arch_opt: torch.optim.Optimizer | None = None

    # -- the mixer: alphas (G, C) -> weights (G, C) ----------------------------------------------
    def __call__(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        return alpha.softmax(dim=-1)

    def attach(self, model) -> None:
        """Called once the supernet exists (before any resume): this strategy becomes the mixer of
        every mixed layer, and its architecture optimizer takes the alphas."""
        for layer in model.mixed_layers().values():
            layer.mixer = self
        if self.has_arch_step and model.arch_parameters():
            self.arch_opt = torch.optim.Adam(model.arch_parameters(), lr=self.search.alpha_lr,
                                             betas=(0.5, 0.999), weight_decay=self.search.alpha_weight_decay)

    def before_step(self, step: int, total: int, epoch: float) -> None:
        pass

    def arch_active(self, step: int, epoch: float) -> bool:
        """Whether this weight step is preceded by an alpha step (after warm-up, every arch_every)."""
        return epoch >= self.search.warmup_epochs and step % self.search.arch_every == 0

    # -- the architecture objective ------------------------------------------------------------------
    def objective(self, model, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        loss = task_loss(logits, labels)
        term = self.search.objective.latency or self.search.objective.flops
        if term is None or self.cost is None or term.weight == 0:
            return loss
        expected = self.cost.expected(self.probabilities(model))
        return penalized(loss, expected, self.cost, term.weight, term.shape, term.target)

    def arch_step(self, model, train_batch, arch_batch, lr: float) -> dict:
        """One alpha update on an arch batch (first order)."""
        tokens, labels = arch_batch
        self.arch_opt.zero_grad(set_to_none=True)
        loss = self.objective(model, model(tokens), labels)
        alphas = model.arch_parameters()
        grads = torch.autograd.grad(loss, alphas)
        for a, g in zip(alphas, grads):
            a.grad = g
        self.arch_opt.step()
        return {"arch_loss": loss.item()}

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
