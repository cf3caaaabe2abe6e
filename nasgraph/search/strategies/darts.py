"""DARTS: softmax-mixed candidates, alphas learned on held-out data (first or second order)."""
from __future__ import annotations

import torch
from torch.func import functional_call

from nasgraph.search.strategies.base import Strategy
from nasgraph.search.strategies.registry import register
from nasgraph.training.losses import task_loss


@register("darts")
class Darts(Strategy):
    def arch_step(self, model, train_batch, arch_batch, lr: float) -> dict:
        if self.search.order == 1:
            return super().arch_step(model, train_batch, arch_batch, lr)
        return self._unrolled_step(model, train_batch, arch_batch, lr)

    def _unrolled_step(self, model, train_batch, arch_batch, xi: float) -> dict:
        """Second order (Liu et al. 2019, eq. 7-8): grad_a L_val(w - xi grad_w L_train(w, a), a),
        with the Hessian-vector product by central finite differences."""
        names = [n for n, p in model.named_parameters() if p.requires_grad and not n.endswith(".alpha")]
        weights = [dict(model.named_parameters())[n] for n in names]
        alphas = model.arch_parameters()
        x, y = train_batch
        g_w = torch.autograd.grad(task_loss(model(x), y), weights)
        unrolled = {n: (w - xi * g).detach().requires_grad_() for n, w, g in zip(names, weights, g_w)}
        xv, yv = arch_batch
        loss = self.objective(model, functional_call(model, unrolled, (xv,)), yv)
        grads = torch.autograd.grad(loss, alphas + list(unrolled.values()))
        d_alpha, d_w = grads[:len(alphas)], grads[len(alphas):]
        eps = 0.01 / torch.sqrt(sum((g * g).sum() for g in d_w)).clamp_min(1e-12)

        def alpha_grad(sign: float):
            shifted = {n: (w + sign * eps * d).detach() for n, w, d in zip(names, weights, d_w)}
            return torch.autograd.grad(task_loss(functional_call(model, shifted, (x,)), y), alphas)

        g_plus, g_minus = alpha_grad(1.0), alpha_grad(-1.0)
        self.arch_opt.zero_grad(set_to_none=True)
        for a, d, gp, gm in zip(alphas, d_alpha, g_plus, g_minus):
            a.grad = d - xi * (gp - gm) / (2 * eps)
        self.arch_opt.step()
        return {"arch_loss": loss.item()}
