"""Hand-derived FLOP formulas of the recurrent types (nasgraph/attention/_recurrent.py and
_recurrent_layer.py), for tests/test_attention_flops.py; same conventions (1 multiply-add = 1;
elementwise 1 per output element; reductions and cumsum 1 per input element). Causal only.

The traced graph (fvcore, jit trace) drops work whose result is never used: the state update after
the last chunk, and with a single chunk every term that only feeds the state passing.
"""
from __future__ import annotations

import math


def recurrent_output(B: int, T: int, D: int, H: int, cfg) -> int:
    """_recurrent_layer.finish and out_proj: RMS norm per head (square, mean, + eps, rsqrt, *), gate."""
    norm = 3 * B * T * D + 2 * B * T * H if cfg.norm else 0
    gate = B * T * D * D + 2 * B * T * D if cfg.gate else 0   # gate_proj, silu, *
    return norm + gate + B * T * D * D


def chunk_decays(P: int, Tc: int, C: int, d: int) -> int:
    """_recurrent.chunk_decays over P rows of Tc positions, d decays each: segment sums (a masked
    cumsum over (C, C, d) per chunk), cumsum, exp of the four results (the whole-chunk one per chunk)."""
    return P * Tc * C * d + P * Tc * d + 2 * P * Tc * d + P * (Tc // C) * d + P * Tc * C * d


def decayed_linear_per_dim(P: int, Tc: int, dk: int, dv: int, C: int) -> int:
    """_recurrent.decayed_linear_per_dim: each chunk whole in the scan step."""
    n = Tc // C
    decays = P * C * dk + 2 * P * C * C * dk + P * C * dk  # cumsum; pair differences, exp; exp(G)
    scores = 2 * P * C * C * dk + P * C * C * dv     # pairs * k, einsum with q; @ v
    inter = P * C * dk + P * C * dk * dv + P * C * dv  # q * from_start, @ S, + intra
    update = 2 * P * C * dk + P * dk + P * dk * dv + P * C * dk + P * C * dk * dv + P * dk * dv
    #        exp(last - G), exp(last); whole * S; k * to_end, ^T @ v, +
    return n * (decays + scores + inter) + (n - 1) * update  # the last chunk's update is unused (dropped)


def decayed_linear(P: int, Tc: int, dk: int, dv: int, d: int, C: int, fixed_rows: int = 0) -> int:
    """_recurrent.decayed_linear: P = B * H rows, d = 1 (scalar decay) or dk (per key dim).

    fixed_rows: H when the decay is one fixed value per head (retention): cumsum, exp(G), the
    difference and exp of to_end per position, exp(whole) per chunk, and the (C, C) pair decays once
    per head (masked cumsum, exp) instead of chunk_decays."""
    if d != 1:
        return decayed_linear_per_dim(P, Tc, dk, dv, C)
    n = Tc // C
    decays = (4 * P * Tc + P * n + 2 * fixed_rows * C * C) if fixed_rows else chunk_decays(P, Tc, C, d)
    scores = P * Tc * C * dk + P * Tc * C            # q k^T * decays
    intra = P * Tc * C * dv                          # scores @ v
    update = P * Tc * dk + P * Tc * dk * dv          # k * to_end; ^T @ v per chunk
    scan = (3 * n - 2) * P * dk * dv                 # per chunk: d * S, + u, S + 0; the last state is
    #                                                   unused, and the traced graph drops its update
    inter = P * Tc * dk + P * Tc * dk * dv + P * Tc * dv  # q * from_start, @ states, + intra
    flops = decays + scores + intra + update + scan + inter
    if n == 1:                                       # one chunk: no state is passed on, the traced graph
        to_end = 2 * P * Tc if fixed_rows else P * Tc * d  # drops to_end (difference, exp), exp(whole)
        flops -= to_end + P * d + update             # and the update
    return flops


def delta_rule(P: int, Tc: int, dk: int, dv: int, C: int, gated: bool) -> int:
    """_recurrent.delta_rule: WY/UT chunk form, (I + L)^-1 by a triangular solve (eager); per chunk in
    the scan: u~ = T (v b - k b S), out = q S + (q k^T) u~, S update."""
    n = Tc // C
    flops = P * Tc * dk + P * Tc * dv + 2 * P * Tc * C * dk  # k * beta, v * beta; (k beta) k^T, q k^T
    if gated:                                        # decays: * pairs on both, k beta, k, q scaled
        flops += chunk_decays(P, Tc, C, 1) + 2 * P * Tc * C + 3 * P * Tc * dk
    flops += P * Tc * C + P * Tc * C * (C - 1) // 2  # unit_lower_inverse: L + I, unit triangular solve
    step = 2 * P * C * dk * dv + 2 * P * C * C * dv + 2 * P * C * dv  # kb S, T @ (vb - .); q S + qk @ u~
    update = P * dk * dv * C + P * dk * dv + (P * dk * dv if gated else 0)  # (d *) S + kd^T u~
    scan = n * step + (n - 1) * update               # the last chunk's update is unused (dropped)
    if gated and n == 1:                             # one chunk: exp(whole), exp(to_end), kd unused
        flops -= P + P * Tc + P * Tc * dk
    return flops + scan


def l2_normalize(B: int, T: int, D: int, H: int) -> int:
    """F.normalize per head: vector norm (2 per element), clamp_min per row, divide."""
    return 2 * B * T * D + B * T * H + B * T * D


def mamba_decay(B: int, T: int, D: int, H: int) -> int:
    """-exp(A_log) * softplus(x W + dt_bias): projection, + bias, softplus, exp and neg per head, *."""
    return B * T * D * H + 2 * B * T * H + 2 * H + B * T * H


def padded(T: int, C: int) -> int:
    return math.ceil(T / C) * C


def retention_flops(B, T, D, H, cfg, causal):
    dh = D // H
    inputs = 3 * B * T * D * D + B * T * D           # q, k, v; q * scale
    core = decayed_linear(B * H, padded(T, cfg.chunk), dh, dh, 1, cfg.chunk, fixed_rows=H)  # fixed decay per head
    return inputs + core + recurrent_output(B, T, D, H, cfg)


def gla_flops(B, T, D, H, cfg, causal):
    dh = D // H
    inputs = 4 * B * T * D * D + 3 * B * T * D       # q, k, v, decay_proj; logsigmoid, / tau, q * scale
    core = decayed_linear(B * H, padded(T, cfg.chunk), dh, dh, dh, cfg.chunk)  # a decay per key dim
    return inputs + core + recurrent_output(B, T, D, H, cfg)


def deltanet_flops(B, T, D, H, cfg, causal, gated=False):
    dh = D // H
    inputs = 3 * B * T * D * D + B * T * D * H + B * T * H + 2 * l2_normalize(B, T, D, H)  # beta: proj, sigmoid
    if gated:
        inputs += mamba_decay(B, T, D, H)
    core = delta_rule(B * H, padded(T, cfg.chunk), dh, dh, cfg.chunk, gated)
    return inputs + core + recurrent_output(B, T, D, H, cfg)


def gated_deltanet_flops(B, T, D, H, cfg, causal):
    return deltanet_flops(B, T, D, H, cfg, causal, gated=True)


def ssd_flops(B, T, D, H, cfg, causal):
    N = cfg.d_state
    dt = B * T * D * H + 2 * B * T * H + 2 * H + B * T * H  # dt: proj, + bias, softplus; exp, neg; * dt
    inputs = dt + B * T * D * D + 2 * B * T * D * N + 2 * B * T * D  # v, B, C projections; x * dt, D * x
    core = decayed_linear(B * H, padded(T, cfg.chunk), N, D // H, 1, cfg.chunk)
    return inputs + core + B * T * D + recurrent_output(B, T, D, H, cfg)   # + D x


RECURRENT_FLOPS = {
    "retention": retention_flops,
    "gla": gla_flops,
    "deltanet": deltanet_flops,
    "gated_deltanet": gated_deltanet_flops,
    "ssd": ssd_flops,
}
