"""Slow, obviously correct references for the kernel and low-rank attention types.

Each reference is written from the paper's formula with loops over (batch, head, query) and the keys a
query may see spelled out as a list, in float64, using the module's own weights. REFERENCES maps a
registered name to fn(module, x, mask) -> (B, T, d_model). Outputs at padded query positions are not
part of the contract; the tests compare real positions only.
"""
from __future__ import annotations

import math

import torch

from nasgraph.attention.base import EPS

Tensor = torch.Tensor


# -- shared pieces --------------------------------------------------------------------------------
def linear64(layer: torch.nn.Linear, x: Tensor) -> Tensor:
    return x @ layer.weight.double().T + layer.bias.double()


def per_head(module, t: Tensor) -> Tensor:
    """(B, T, H*dh) -> (B, H, T, dh)."""
    B, T, _ = t.shape
    return t.view(B, T, module.n_heads, module.head_dim).transpose(1, 2)


def qkv64(module, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    x = x.double()
    return (per_head(module, linear64(module.q_proj, x)), per_head(module, linear64(module.k_proj, x)),
            per_head(module, linear64(module.v_proj, x)))


def visible(module, mask: Tensor | None, b: int, i: int, T: int) -> list[int]:
    """Keys query i of batch element b may see: real ones, and j <= i in the causal form."""
    last = i + 1 if module.causal else T
    return [j for j in range(last) if mask is None or bool(mask[b, j])]


def finish(module, heads: Tensor) -> Tensor:
    """(B, H, T, dh) -> out_proj -> (B, T, d_model) float64."""
    B, H, T, dh = heads.shape
    return linear64(module.out_proj, heads.transpose(1, 2).reshape(B, T, H * dh))


def kernel_attention(module, x, mask, weights, eps: float = 0.0) -> Tensor:
    """out_i = sum_j w_ij v_j / sum_j w_ij over the visible keys j (loops over b, h, i).

    weights(q_i, K_J, i, J, T) -> (len(J),) non-negative kernel values of query i with keys J.
    eps > 0: denominator max(sum_j w_ij, eps) (cosFormer); else the plain ratio.
    """
    q, k, v = qkv64(module, x)
    B, H, T, _ = q.shape
    out = torch.zeros_like(q)
    for b in range(B):
        for i in range(T):
            J = visible(module, mask, b, i, T)
            if not J:
                continue
            for h in range(H):
                w = weights(q[b, h, i], k[b, h, J], i, torch.tensor(J, dtype=q.dtype), T)  # (n,)
                den = w.sum().clamp_min(eps) if eps else w.sum()
                out[b, h, i] = (w @ v[b, h, J]) / den
    return finish(module, out)


def softmax_rows(module, logits_of, v: Tensor, mask) -> Tensor:
    """out[b, h, i] = softmax over visible j of logits_of(b, h, i, keys) . v[b, h, keys]."""
    B, H, T, _ = v.shape
    out = torch.zeros_like(v)
    for b in range(B):
        for i in range(T):
            keys = visible(module, mask, b, i, T)
            if keys:
                for h in range(H):
                    out[b, h, i] = torch.softmax(logits_of(b, h, i, keys), dim=0) @ v[b, h, keys]
    return out


# -- the references ---------------------------------------------------------------------------------
def softmax_ref(module, x, mask):
    """softmax(q_i K_J^T / sqrt(dh)) V_J; grouped-query: query head h reads key/value head h // (H / n_kv)."""
    xd = x.double()
    q = per_head(module, linear64(module.q_proj, xd))                  # (B, H, T, dh)
    k, v = (linear64(p, xd).unflatten(-1, (module.n_kv, module.head_dim)).transpose(1, 2)
            for p in (module.k_proj, module.v_proj))                    # (B, n_kv, T, dh)
    group = module.n_heads // module.n_kv
    scale = 1 / math.sqrt(module.head_dim)
    v_per_query_head = torch.stack([v[:, h // group] for h in range(module.n_heads)], 1)  # (B, H, T, dh)
    row = lambda b, h, i, J: k[b, h // group, J] @ q[b, h, i] * scale  # noqa: E731
    return finish(module, softmax_rows(module, row, v_per_query_head, mask))


def linear_ref(module, x, mask):
    phi = lambda t: torch.nn.functional.elu(t) + 1  # noqa: E731
    return kernel_attention(module, x, mask, lambda qi, kJ, i, J, T: phi(kJ) @ phi(qi))


def performer_ref(module, x, mask):
    """FAVOR+: phi(x) = exp(W x - |x|^2/2) / sqrt(m) on x scaled by dh^(-1/4), no stabiliser."""
    W = module.features.double()                                        # (m, dh)
    s = module.head_dim ** -0.25

    def phi(t):                                                         # (..., dh) -> (..., m)
        t = t * s
        return torch.exp(t @ W.T - (t * t).sum(-1, keepdim=True) / 2) / math.sqrt(W.shape[0])

    return kernel_attention(module, x, mask, lambda qi, kJ, i, J, T: phi(kJ) @ phi(qi))


def cosformer_ref(module, x, mask):
    """(ReLU(q_i) . ReLU(k_j)) cos(pi (i - j) / 2M), positions 1..T, M = T."""
    def weights(qi, kJ, i, J, T):
        return (torch.relu(kJ) @ torch.relu(qi)) * torch.cos(math.pi * (i - J) / (2 * T))

    return kernel_attention(module, x, mask, weights, eps=EPS)


def linformer_ref(module, x, mask):
    """softmax(Q (E K)^T / sqrt(d)) (F V), sums over the real positions only."""
    q, k, v = qkv64(module, x)
    B, H, T, dh = q.shape
    E, F = module.E.double(), module.F.double()
    out = torch.zeros_like(q)
    for b in range(B):
        real = [j for j in range(T) if mask is None or bool(mask[b, j])]
        for h in range(H):
            ek = sum((E[:, j, None] * k[b, h, j] for j in real), torch.zeros(E.shape[0], dh, dtype=q.dtype))
            fv = sum((F[:, j, None] * v[b, h, j] for j in real), torch.zeros(F.shape[0], dh, dtype=q.dtype))
            for i in range(T):
                out[b, h, i] = torch.softmax(ek @ q[b, h, i] / math.sqrt(dh), dim=0) @ fv
    return finish(module, out)


def paper_pinv(a: Tensor, iterations: int) -> Tensor:
    """Z0 = A^T / (||A||_1 ||A||_inf); Z <- 1/4 Z (13 I - A Z (15 I - A Z (7 I - A Z)))."""
    eye = torch.eye(a.shape[0], dtype=a.dtype)
    z = a.T / (a.abs().sum(0).max() * a.abs().sum(1).max())
    for _ in range(iterations):
        az = a @ z
        z = 0.25 * z @ (13 * eye - az @ (15 * eye - az @ (7 * eye - az)))
    return z


def nystromformer_ref(module, x, mask):
    """F~ pinv(A~) B~ V with landmarks = means of the real tokens of m segments of ceil(T/m)."""
    q, k, v = qkv64(module, x)
    B, H, T, dh = q.shape
    m, s = module.config.landmarks, 1 / math.sqrt(dh)
    seg = math.ceil(T / m)
    out = torch.zeros_like(q)
    for b in range(B):
        real = [j for j in range(T) if mask is None or bool(mask[b, j])]
        segments = [[j for j in real if c * seg <= j < (c + 1) * seg] for c in range(m)]
        segments = [g for g in segments if g]
        if not segments:
            continue
        for h in range(H):
            lq = torch.stack([q[b, h, g].mean(0) for g in segments])   # (m', dh)
            lk = torch.stack([k[b, h, g].mean(0) for g in segments])   # (m', dh)
            f = torch.softmax(q[b, h] @ lk.T * s, dim=-1)               # (T, m')
            a = torch.softmax(lq @ lk.T * s, dim=-1)                    # (m', m')
            bt = torch.softmax(lq @ k[b, h, real].T * s, dim=-1)        # (m', n_real)
            out[b, h] = f @ paper_pinv(a, module.config.pinv_iterations) @ bt @ v[b, h, real]
    return finish(module, out)


def per_head_mlp_hidden(module, xd: Tensor) -> Tensor:
    """ReLU(W1_h x + b1_h) for every head: (B, T, d) -> (B, H, T, e)."""
    B, T, _ = xd.shape
    return torch.relu(linear64(module.dense1, xd)).view(B, T, module.n_heads, -1).transpose(1, 2)


def synthesizer_ref(module, x, mask):
    """dense: logits_i = W2_h ReLU(W1_h x_i + b1_h) + b2_h (first T); random: R_h[i, :T]."""
    xd = x.double()
    B, T, _ = x.shape
    v = per_head(module, linear64(module.v_proj, xd))
    if module.config.mode == "dense":
        hidden = per_head_mlp_hidden(module, xd)                        # (B, H, T, e)
        w2, b2 = module.dense2_weight.double(), module.dense2_bias.double()  # (H, n, e), (H, n)
        row = lambda b, h, i, J: w2[h, J] @ hidden[b, h, i] + b2[h, J]  # noqa: E731
    else:
        R = module.random_logits.double()
        row = lambda b, h, i, J: R[h, i, J]                             # noqa: E731
    return finish(module, softmax_rows(module, row, v, mask))


def reformer_ref(module, x, mask):
    """LSH attention from its definition, one query at a time.

    bucket(t) = argmax([q_t R, -q_t R]) (padding: an extra last bucket); positions sorted by
    (bucket, position); query i sees keys of its bucket in its chunk of C sorted places and the chunk
    before (causal: 0..C sorted places back), itself only with logit -1e5; keys are unit-length
    queries; rounds are mixed by the softmax of their log-sum-exps.
    """
    xd = x.double()
    B, T, _ = x.shape
    q, v = per_head(module, linear64(module.q_proj, xd)), per_head(module, linear64(module.v_proj, xd))
    rotations = module.rotations.double()                               # (R, dh, nb/2)
    C, nb, scale = module.config.chunk, module.config.n_buckets, module.head_dim ** -0.5
    out = torch.zeros_like(q)
    for b in range(B):
        real = [mask is None or bool(mask[b, t]) for t in range(T)]
        for h in range(q.shape[1]):
            outs, lses = [], []
            for rot in rotations:
                bucket = [int(torch.cat([q[b, h, t] @ rot, -(q[b, h, t] @ rot)]).argmax()) if real[t] else nb
                          for t in range(T)]
                slot = {t: s for s, t in enumerate(sorted(range(T), key=lambda t: (bucket[t], t)))}

                def sees(i, j):
                    if bucket[j] != bucket[i]:
                        return False
                    if module.causal:
                        return 0 <= slot[i] - slot[j] <= C
                    return slot[i] // C - slot[j] // C in (0, 1)

                round_out, round_lse = torch.zeros(T, q.shape[-1], dtype=q.dtype), torch.zeros(T, dtype=q.dtype)
                for i in range(T):
                    J = [j for j in range(T) if sees(i, j)]
                    logits = torch.stack([torch.tensor(-1e5, dtype=q.dtype) if j == i else
                                          q[b, h, i] @ q[b, h, j] / q[b, h, j].norm() * scale for j in J])
                    round_out[i] = torch.softmax(logits, 0) @ v[b, h, J]
                    round_lse[i] = torch.logsumexp(logits, 0)
                outs.append(round_out)
                lses.append(round_lse)
            weights = torch.softmax(torch.stack(lses), dim=0)               # (R, T)
            out[b, h] = (weights[..., None] * torch.stack(outs)).sum(0)
    return finish(module, out)


REFERENCES = {
    "softmax": softmax_ref,
    "linear": linear_ref,
    "performer": performer_ref,
    "cosformer": cosformer_ref,
    "linformer": linformer_ref,
    "nystromformer": nystromformer_ref,
    "synthesizer": synthesizer_ref,
    "reformer": reformer_ref,
}
