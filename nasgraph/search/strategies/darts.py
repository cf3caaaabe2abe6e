"""DARTS: softmax-mixed candidates, alphas learned on held-out data (first or second order).

Guards against DARTS rewarding what learns fastest early: the alphas stay frozen for the first
`warmup` share of the steps (weights only), and `select: perturbation` (Wang et al. 2021) picks,
per group, the candidate whose masking drops the supernet's held-out metric the most instead of the
largest alpha.
"""
from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch.func import functional_call

from nasgraph import distributed
from nasgraph.search.strategies._masking import UnitMasking
from nasgraph.search.strategies._supernet import AlphaConfig, SupernetStrategy
from nasgraph.search.strategies.registry import register
from nasgraph.training.losses import task_loss
from nasgraph.training.step import weighted


class DartsConfig(AlphaConfig):
    order: Literal[1, 2] = 1                      # first- or second-order (unrolled) alpha gradient
    warmup: float = Field(0.3, ge=0, lt=1)        # weights only for the first 30% of the steps
    select: Literal["argmax", "perturbation"] = "argmax"


@register("darts")
class Darts(UnitMasking, SupernetStrategy):
    Config = DartsConfig

    def mix(self, alpha: torch.Tensor, node: str) -> torch.Tensor:
        on = self.enabled.get(node)
        return alpha.softmax(-1) if on is None else alpha.masked_fill(~on, float("-inf")).softmax(-1)

    def choose(self, model, accuracy=None, **_) -> dict[str, list[int]]:
        if self.config.select == "argmax":
            return super().choose(model)
        scores = self.score(model, accuracy)
        return {n: s.argmax(-1).tolist() for n, s in scores.items()}   # the unit whose loss hurts most

    def arch_step(self, model, train_batch, arch_batch, lr: float, weights: tuple[float, float] = (1.0, 1.0)) -> dict:
        if self.config.order == 1:
            return super().arch_step(model, train_batch, arch_batch, lr, weights)
        return self._unrolled_step(model, train_batch, arch_batch, lr, weights)

    def _unrolled_step(self, model, train_batch, arch_batch, xi: float, weights: tuple[float, float]) -> dict:
        """Second order (Liu et al. 2019, eq. 7-8): grad_a L_val(w - xi grad_w L_train(w, a), a),
        with the Hessian-vector product by central finite differences. Under torchrun every gradient
        is averaged over the ranks before it is used, as one process would compute it on the whole batch."""
        names = [n for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".alpha")]
        params = [dict(model.named_parameters())[n] for n in names]
        alphas = model.arch_parameters()
        (x, y), (xv, yv), (w_train, w_arch) = train_batch, arch_batch, weights

        def train_grad(values: dict | None, wrt: list) -> list:
            logits = model(x) if values is None else functional_call(model, values, (x,))
            return mean(torch.autograd.grad(weighted(task_loss(logits.float(), y), logits, w_train), wrt))

        g_w = train_grad(None, params)
        unrolled = {n: (w - xi * g).detach().requires_grad_() for n, w, g in zip(names, params, g_w)}
        logits = functional_call(model, unrolled, (xv,))
        loss = self.objective(model, logits, yv)
        grads = mean(torch.autograd.grad(weighted(loss, logits, w_arch), alphas + list(unrolled.values())))
        d_alpha, d_w = grads[:len(alphas)], grads[len(alphas):]
        eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)

        def alpha_grad(sign: float):
            return train_grad({n: (w + sign * eps * d).detach() for n, w, d in zip(names, params, d_w)}, alphas)

        g_plus, g_minus = alpha_grad(1.0), alpha_grad(-1.0)
        self.arch_opt.zero_grad(set_to_none=True)
        for a, d, gp, gm in zip(alphas, d_alpha, g_plus, g_minus):
            a.grad = d - xi * (gp - gm) / (2 * eps)
        self.arch_opt.step()
        return {"arch_loss": distributed.weighted_mean(loss.item(), w_arch, loss.device)}


def mean(grads) -> list:
    """Gradients averaged over the ranks (as they are in one process)."""
    return distributed.all_reduce_mean(list(grads))
