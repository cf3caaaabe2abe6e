"""Slow, obviously-correct references for the sparse-pattern, AFT and DCMHA attention types.

REFERENCES maps a type name to fn(module, x, mask) -> (B, T, d_model), computed straight from the
paper's formula with the module's own weights: dense T x T matrices with explicit masks, or loops.
Everything is computed in float64, so the result pins the math down to rounding.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


# -- shared pieces -----------------------------------------------------------------------------------
def _keys_real(mask: Tensor | None, x: Tensor) -> Tensor:
    """(B, T) bool, True for real tokens."""
    return torch.ones(x.shape[:2], dtype=torch.bool) if mask is None else mask


def _lin(layer, x: Tensor) -> Tensor:
    """A linear layer of the module applied in float64."""
    bias = None if layer.bias is None else layer.bias.double()
    return F.linear(x.double(), layer.weight.double(), bias)


def _split(module, t: Tensor) -> Tensor:
    """(B, T, H*dh) -> (B, H, T, dh)."""
    return t.unflatten(-1, (module.n_heads, module.head_dim)).transpose(1, 2)


def _dense_softmax(module, x: Tensor, mask: Tensor | None, allowed: Tensor) -> Tensor:
    """softmax(Q K^T / sqrt(dh)) V restricted to allowed (T, T) [query, key] and real keys."""
    q, k, v = (_split(module, _lin(p, x)) for p in (module.q_proj, module.k_proj, module.v_proj))
    logits = q @ k.transpose(-2, -1) / math.sqrt(module.head_dim)              # (B, H, T, T)
    ok = allowed[None, None] & _keys_real(mask, x)[:, None, None, :]          # (B, 1, T, T)
    probs = logits.masked_fill(~ok, float("-inf")).softmax(-1).nan_to_num(0.0)
    out = (probs @ v).transpose(1, 2).flatten(2)                               # (B, T, H*dh)
    return _lin(module.out_proj, out)


def _grid(T: int) -> tuple[Tensor, Tensor]:
    """Query index i and key index j, each (T, T)."""
    i = torch.arange(T)[:, None].expand(T, T)
    return i, torch.arange(T)[None, :].expand(T, T)


# -- sparse patterns ---------------------------------------------------------------------------------
def local_ref(module, x, mask=None):
    """Keys in the query's own block of `window` positions (and not after it when causal)."""
    i, j = _grid(x.shape[1])
    w = module.config.window
    allowed = (i // w) == (j // w)
    if module.causal:
        allowed &= j <= i
    return _dense_softmax(module, x, mask, allowed)


REFERENCES = {
    "local": local_ref,
}


def sliding_window_ref(module, x, mask=None):
    """Keys with |i - j| <= window (causal: 0 <= i - j <= window), plus the global first positions
    (keys of all, and queries of all) and the sink positions (keys of all)."""
    i, j = _grid(x.shape[1])
    w, g, s = module.config.window, module.config.n_global, module.config.sinks
    if module.causal:
        allowed = ((i - j).abs() <= w) & (j <= i) | ((j < max(g, s)) & (j <= i))
    else:
        allowed = ((i - j).abs() <= w) | (j < max(g, s)) | (i < g)
    return _dense_softmax(module, x, mask, allowed)


REFERENCES["sliding_window"] = sliding_window_ref


def bigbird_ref(module, x, mask=None):
    """Block-level pattern built by loops: window + global blocks + the module's fixed random draw."""
    c, T = module.config, x.shape[1]
    b = c.block
    nb = -(-T // b)
    scores = module.random_scores
    seen = torch.zeros(nb, nb, dtype=torch.bool)                  # [query block, key block]
    for i in range(nb):
        for j in range(nb):
            window = (0 <= i - j <= c.window_blocks) if module.causal else abs(i - j) <= c.window_blocks
            seen[i, j] = window or j < c.n_global or (i < c.n_global and not module.causal)
        # random: the n_random best-scoring blocks neither window nor global (causal: before the window)
        outside = [j for j in range(c.n_global, nb)
                   if (i - j > c.window_blocks if module.causal else abs(i - j) > c.window_blocks)]
        for j in sorted(outside, key=lambda j: -float(scores[i, j]))[:c.n_random]:
            seen[i, j] = True
        if module.causal and i < c.n_global:
            seen[i, :i + 1] = True
    i, j = _grid(T)
    allowed = seen[i // b, j // b]
    if module.causal:
        allowed &= j <= i
    return _dense_softmax(module, x, mask, allowed)


REFERENCES["bigbird"] = bigbird_ref


def sparse_ref(module, x, mask=None):
    """Fixed pattern: same block (i // l == j // l) or summary column (j mod l >= l - c)."""
    i, j = _grid(x.shape[1])
    l, c = module.config.block, module.config.n_summary
    allowed = ((i // l) == (j // l)) | ((j % l) >= l - c)
    if module.causal:
        allowed &= j <= i
    return _dense_softmax(module, x, mask, allowed)


REFERENCES["sparse"] = sparse_ref


# -- AFT ---------------------------------------------------------------------------------------------
def _aft_ref(module, x, mask, bias) -> Tensor:
    """Y_t = sigmoid(Q_t) * sum_t' exp(K_t' + w[t, t']) V_t' / sum_t' exp(K_t' + w[t, t']) by a loop over t.

    bias(t) -> (T, C) is w[t, :] broadcast to the channels; sums run over real t' (t' <= t if causal).
    """
    q, k, v = (_lin(p, x) for p in (module.q_proj, module.k_proj, module.v_proj))   # (B, T, C)
    B, T, C = q.shape
    real = _keys_real(mask, x)
    out = torch.zeros(B, T, C, dtype=torch.float64)
    for t in range(T):
        keep = real.clone()
        if module.causal:
            keep[:, t + 1:] = False
        logits = (k + bias(t)).masked_fill(~keep[..., None], float("-inf"))        # (B, T, C)
        weights = torch.softmax(logits, dim=1).nan_to_num(0.0)                     # over t'
        out[:, t] = torch.sigmoid(q[:, t]) * (weights * v).sum(1)
    return _lin(module.out_proj, out)


def aft_simple_ref(module, x, mask=None):
    """w = 0: a per-channel softmax of K over positions."""
    return _aft_ref(module, x, mask, lambda t: 0.0)


REFERENCES["aft_simple"] = aft_simple_ref


def aft_full_ref(module, x, mask=None):
    """w = u v^T, the full T x T position biases."""
    T = x.shape[1]
    w = module.pos_u[:T].double() @ module.pos_v[:T].double().T                   # (T, T)
    return _aft_ref(module, x, mask, lambda t: w[t][:, None])


REFERENCES["aft_full"] = aft_full_ref


def aft_local_ref(module, x, mask=None):
    """w = u v^T where |t - t'| < window, exactly 0 elsewhere."""
    T, s = x.shape[1], module.config.window
    w = module.pos_u[:T].double() @ module.pos_v[:T].double().T                   # (T, T)
    i, j = _grid(T)
    w = torch.where((i - j).abs() < s, w, torch.zeros_like(w))
    return _aft_ref(module, x, mask, lambda t: w[t][:, None])


REFERENCES["aft_local"] = aft_local_ref


def aft_conv_ref(module, x, mask=None):
    """w[t, t'] = filter_h[t' - t + left] for 0 <= t' - t + left < s (per head h), 0 elsewhere:
    then exp(w) - 1 inside the window plus the global sum is the paper's conv1d formula."""
    T, s, H = x.shape[1], module.config.kernel, module.n_heads
    left = s - 1 if module.causal else (s - 1) // 2
    f = module.filters.double()                                                    # (H, s)

    def bias(t):
        w = torch.zeros(T, H, dtype=torch.float64)
        for tp in range(T):
            if 0 <= tp - t + left < s:
                w[tp] = f[:, tp - t + left]
        return w.repeat_interleave(module.head_dim, 1)                             # (T, C)

    return _aft_ref(module, x, mask, bias)


REFERENCES["aft_conv"] = aft_conv_ref


# -- DCMHA ---------------------------------------------------------------------------------------------
def _dcmha_weights(module, x):
    """Per stage: (qw1, qw2, kw1, kw2) each (B, T, R, N) and gates (qg, kg) each (B, T, N), float64."""
    R, N = module.config.rank, module.n_heads
    hidden = F.gelu(_lin(module.dyn_hidden, x)).unflatten(-1, (4, -1))             # (B, T, 4, K)
    w = torch.einsum("btck,ckin->btcin", hidden, module.dyn_out.double())          # (B, T, 4, 2R, N)
    w1, w2 = w[..., :R, :], w[..., R:, :]
    w1 = w1 / torch.sqrt((w1 ** 2).mean(-1, keepdim=True) + 1e-6)
    g = torch.tanh(_lin(module.dyn_gate, x)).unflatten(-1, (4, N))                  # (B, T, 4, N)
    # sets in order: pre-query, pre-key, post-query, post-key
    return {"pre": (w1[:, :, 0], w2[:, :, 0], w1[:, :, 1], w2[:, :, 1], g[:, :, 0], g[:, :, 1]),
            "post": (w1[:, :, 2], w2[:, :, 2], w1[:, :, 3], w2[:, :, 3], g[:, :, 2], g[:, :, 3])}


def _compose_naive(a, weights, static):
    """a: (B, N, T, S); for every (b, t, s) build the N x N matrix M and return a[b, :, t, s] @ M."""
    qw1, qw2, kw1, kw2, qg, kg = weights
    B, N, T, S = a.shape
    out = torch.empty_like(a)
    for b in range(B):
        for t in range(T):
            for s in range(S):
                M = torch.eye(N, dtype=torch.float64) + (0.0 if static is None else static)
                M = M + qw1[b, t].T @ qw2[b, t] + kw1[b, s].T @ kw2[b, s]            # sum_r outer(w1_r, w2_r)
                M = M + torch.diag(qg[b, t] + kg[b, s])
                out[b, :, t, s] = a[b, :, t, s] @ M
    return out


def dcmha_ref(module, x, mask=None):
    """Compose by explicit per-(t, s) head-by-head matrices, pre (then mask, softmax) and post."""
    q, k, v = (_split(module, _lin(p, x)) for p in (module.q_proj, module.k_proj, module.v_proj))
    T = x.shape[1]
    weights = _dcmha_weights(module, x)
    static = None if module.static_mix is None else module.static_mix.double()
    logits = q @ k.transpose(-2, -1) / math.sqrt(module.head_dim)                 # (B, N, T, S)
    if module.config.pre:
        logits = _compose_naive(logits, weights["pre"], None if static is None else static[0])
    i, j = _grid(T)
    visible = (j <= i) if module.causal else torch.ones(T, T, dtype=torch.bool)
    ok = _keys_real(mask, x)[:, None, None, :] & visible
    probs = logits.masked_fill(~ok, float("-inf")).softmax(-1).nan_to_num(0.0)
    if module.config.post:
        probs = _compose_naive(probs, weights["post"], None if static is None else static[1])
    return _lin(module.out_proj, (probs @ v).transpose(1, 2).flatten(2))


REFERENCES["dcmha"] = dcmha_ref
