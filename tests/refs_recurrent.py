"""Slow references for the recurrent types: the per-token recurrence from each paper, in float64.

Gates, keys and values are recomputed from the module's weights by the paper's formulas; the state
S (dk, dv) of each head is updated one token at a time with explicit matrices (no chunks, no shared
code with the module). Padded positions are skipped: the state passes over them unchanged.
REFERENCES maps a name to fn(module, x, mask) -> (B, T, d_model).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def lin(layer, x: Tensor) -> Tensor:
    bias = None if layer.bias is None else layer.bias.double()
    return F.linear(x.double(), layer.weight.double(), bias)


def projected(module, x: Tensor, *layers) -> list[Tensor]:
    """Each layer's projection of x (B, T, c), then the short convolution when the module has one:
    y_t = silu(b + sum_j w_j u_{t-K+1+j}) per channel, over the concatenated projections, zeros before t=0."""
    parts = [lin(layer, x) for layer in layers]
    if module.short_conv is None:
        return parts
    u = torch.cat(parts, -1)                                          # (B, T, C)
    w, b = module.short_conv.conv.weight.double()[:, 0], module.short_conv.conv.bias.double()  # (C, K), (C,)
    K, T = w.shape[1], u.shape[1]
    y = torch.stack([b + sum(w[:, j] * u[:, t - K + 1 + j] for j in range(K) if t - K + 1 + j >= 0)
                     for t in range(T)], 1)                           # (B, T, C)
    return list(F.silu(y).split([p.shape[-1] for p in parts], -1))


def qkv(module, x: Tensor) -> list[Tensor]:
    """(B, T, H, dh) each."""
    return [heads(t, module.n_heads) for t in projected(module, x, module.q_proj, module.k_proj, module.v_proj)]


def heads(t: Tensor, H: int) -> Tensor:
    """(B, T, H*d) -> (B, T, H, d)."""
    return t.unflatten(-1, (H, -1))


def finish(module, o: Tensor, x: Tensor) -> Tensor:
    """o: (B, T, H, dv) -> norm, gate, out_proj -> (B, T, d_model)."""
    if module.config.norm:
        o = o / torch.sqrt((o * o).mean(-1, keepdim=True) + 1e-6)
    if module.config.gate:
        o = o * heads(F.silu(lin(module.gate_proj, x)), module.n_heads)
    return lin(module.out_proj, o.flatten(2))


def run(module, x, mask, per_token) -> Tensor:
    """Loop over b, t: S <- per_token(S, b, t) -> (o (H, dv), S); padded steps leave S alone."""
    B, T, _ = x.shape
    H, dk, dv = module.n_heads, module.key_dim, module.head_dim
    o = torch.zeros(B, T, H, dv, dtype=torch.float64)
    for b in range(B):
        S = torch.zeros(H, dk, dv, dtype=torch.float64)
        for t in range(T):
            if mask is not None and not mask[b, t]:
                continue
            o[b, t], S = per_token(S, b, t)
    return finish(module, o, x)


def retention_ref(module, x, mask):
    """S_t = gamma_h S_{t-1} + k_t^T v_t, o_t = q_t S_t / sqrt(dk), gamma_h = 1 - 2^(-5-h)."""
    H = module.n_heads
    q, k, v = qkv(module, x)
    gamma = torch.tensor([1 - 2.0 ** (-5 - h) for h in range(H)], dtype=torch.float64)

    def per_token(S, b, t):
        S = gamma[:, None, None] * S + torch.einsum("hk,hv->hkv", k[b, t], v[b, t])
        return torch.einsum("hk,hkv->hv", q[b, t], S) / math.sqrt(module.head_dim), S

    return run(module, x, mask, per_token)


def gla_ref(module, x, mask):
    """S_t = diag(a_t) S_{t-1} + k_t^T v_t, a_t = sigmoid(x W_a)^(1/tau), o_t = q_t S_t / sqrt(dk)."""
    H = module.n_heads
    q, k, v = qkv(module, x)
    a = torch.sigmoid(heads(lin(module.decay_proj, x), H)) ** (1 / module.config.gate_temperature)

    def per_token(S, b, t):
        S = a[b, t][:, :, None] * S + torch.einsum("hk,hv->hkv", k[b, t], v[b, t])
        return torch.einsum("hk,hkv->hv", q[b, t], S) / math.sqrt(module.head_dim), S

    return run(module, x, mask, per_token)


def delta_ref(module, x, mask, decay=None):
    """S_t = a_t (I - b_t k_t^T k_t) S_{t-1} + b_t k_t^T v_t with unit q, k; b = sigmoid(x W_b)."""
    H, dk = module.n_heads, module.head_dim
    q, k, v = qkv(module, x)
    q, k = q / q.norm(dim=-1, keepdim=True), k / k.norm(dim=-1, keepdim=True)
    beta = torch.sigmoid(lin(module.beta_proj, x))                    # (B, T, H)
    eye = torch.eye(dk, dtype=torch.float64)

    def per_token(S, b, t):
        kt = k[b, t]                                                  # (H, dk)
        a = torch.ones(H, dtype=torch.float64) if decay is None else decay[b, t]
        erase = eye - beta[b, t][:, None, None] * torch.einsum("hi,hj->hij", kt, kt)
        S = a[:, None, None] * (erase @ S) + beta[b, t][:, None, None] * torch.einsum("hk,hv->hkv", kt, v[b, t])
        return torch.einsum("hk,hkv->hv", q[b, t], S), S

    return run(module, x, mask, per_token)


def mamba_decay(module, x) -> tuple[Tensor, Tensor]:
    """dt = softplus(x W + dt_bias), a = exp(-exp(A_log) dt): (B, T, H) each."""
    dt = F.softplus(lin(module.dt_proj if hasattr(module, "dt_proj") else module.decay_proj, x)
                    + module.dt_bias.double())
    return dt, torch.exp(-torch.exp(module.A_log.double()) * dt)


def gated_delta_ref(module, x, mask):
    return delta_ref(module, x, mask, decay=mamba_decay(module, x)[1])


def ssd_ref(module, x, mask):
    """S_t = a_t S_{t-1} + dt_t B_t^T x_t, y_t = C_t S_t + D x_t (B, C shared by the heads)."""
    xv, Bt, Ct = projected(module, x, module.v_proj, module.b_proj, module.c_proj)  # (B, T, H*dh | N | N)
    xv = heads(xv, module.n_heads)                                    # (B, T, H, dh)
    dt, a = mamba_decay(module, x)                                    # (B, T, H)
    D = module.D.double()

    def per_token(S, b, t):
        S = a[b, t][:, None, None] * S + dt[b, t][:, None, None] * torch.einsum("k,hv->hkv", Bt[b, t], xv[b, t])
        return torch.einsum("k,hkv->hv", Ct[b, t], S) + D[:, None] * xv[b, t], S

    return run(module, x, mask, per_token)


REFERENCES = {
    "retention": retention_ref,
    "gla": gla_ref,
    "deltanet": delta_ref,
    "gated_deltanet": gated_delta_ref,
    "ssd": ssd_ref,
}
