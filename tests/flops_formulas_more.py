"""Hand-derived FLOP formulas, part 2: AFT, DCMHA, Nystromformer, Reformer and Synthesizer, for
tests/test_attention_flops.py (same conventions and shared pieces as flops_formulas.py)."""
from __future__ import annotations

import math

from flops_formulas import SOFTMAX, causal_mask, qkvo, sdpa


def aft_keys(B: int, T: int, C: int) -> int:
    """_blocks.aft_keys without a mask: amax over T, subtract, exp."""
    return 3 * B * T * C


def aft_output(B: int, T: int, C: int, rows: int) -> int:
    """_blocks.aft_output: clamp the (B, rows, C) denominator, numerator / it, sigmoid(Q), * that."""
    return 2 * B * rows * C + 2 * B * T * C


def aft_simple_flops(B, T, D, H, cfg, causal):
    if not causal:                                   # softmax over T, * V, sum over T, sigmoid(Q), * that
        return qkvo(B, T, D) + (SOFTMAX + 4) * B * T * D
    sums = 2 * B * T * D                             # cumsum of eK*V and eK
    return qkvo(B, T, D) + aft_keys(B, T, D) + B * T * D + sums + aft_output(B, T, D, T)


def aft_full_flops(B, T, D, H, cfg, causal):
    weights = T * T * cfg.pos_dim + SOFTMAX * T * T  # u v^T, row softmax (causal: masked_fill, free)
    sums = B * T * T * 2 * D                         # einsum ts,bsc->btc over [eK*V, eK] (one eager chunk)
    return qkvo(B, T, D) + aft_keys(B, T, D) + B * T * D + weights + sums + aft_output(B, T, D, T)


def aft_local_flops(B, T, D, H, cfg, causal):
    s = cfg.window
    nb = math.ceil(T / s)                            # blocks of s (positions padded to nb * s)
    band = nb * s * (2 if causal else 3) * s         # (nb, s, L) bias entries, L = neighbour slots
    weights = band * cfg.pos_dim + band + 3 * nb * s + 4 * band  # u v^T; amax; clamp, -m, exp(-m);
    #                                                 w - m, exp, - outside, * in_band
    correction = band * B * 2 * D                    # einsum nql,bnlc->bnqc
    sums = 2 * B * T * D + 2 * (2 * B * T * D)       # total (sum or cumsum); outside * total, + correction
    return qkvo(B, T, D) + aft_keys(B, T, D) + B * T * D + weights + correction + sums + aft_output(B, T, D, T)


def aft_conv_flops(B, T, D, H, cfg, causal):
    s = cfg.kernel
    filters = 2 * H * s                              # exp(w) - 1
    conv = B * 2 * D * s * T                         # depthwise conv1d over [eK*V, eK]
    sums = 2 * B * T * D + 2 * B * T * D             # total (sum or cumsum); total + local
    return qkvo(B, T, D) + aft_keys(B, T, D) + B * T * D + filters + conv + sums + aft_output(B, T, D, T)


def dcmha_flops(B, T, D, H, cfg, causal):
    dh, N, R = D // H, H, cfg.rank
    K, L = cfg.hidden_mult * N, B * N * T * T        # L logits
    weights = B * T * D * 4 * K + B * T * 4 * K      # W1, gelu
    weights += B * T * 4 * K * 2 * R * N             # einsum btck,ckin->btcin
    weights += 3 * B * T * 4 * R * N + 2 * B * T * 4 * R  # RMS of w1: pow, mean, * ; + eps, rsqrt
    weights += B * T * D * 4 * N + B * T * 4 * N     # Wd, tanh
    compose = B * N * T + 2 * L + 4 * R * L          # 1 + qg, a * that, + a * kg; per r: two hiddens (N fused
    #                                                 multiply-adds of L / N each) and two rank-1 updates of L
    if cfg.static_mix:
        compose += N * L                             # N fused multiply-adds a[:, n] * W_static[n]
    stages = int(cfg.pre) + int(cfg.post)
    attend = 2 * L * dh + L + SOFTMAX * L            # q k^T, p v, scale, softmax (causal: masked_fill, free)
    return qkvo(B, T, D) + weights + stages * compose + attend


def nystromformer_flops(B, T, D, H, cfg, causal):
    dh, P, m, it = D // H, B * H, cfg.landmarks, cfg.pinv_iterations
    N, seg = P * T, math.ceil(T / m)                 # segments of seg positions, padded to m * seg
    means = B * m * seg + N * dh + P * m * seg * dh + B * m + P * m * dh  # counts, t*real, sums, clamp, /
    landmarks = 2 * means + 2 * B * m                # q and k means; (1 - present) * NEG_INF
    a = P * m * m * dh + P * m * m + SOFTMAX * P * m * m + P * m * m  # q~ k~^T + bias, softmax, * present
    bv = sdpa(P * m * T, dh, dh)                     # B~ V: q~ over all T keys, no mask
    z0 = 2 * (P * m * m + P * m) + 2 * P + P * m * m  # two norms (sum, amax), product, clamp, a^T / .
    step = 4 * P * m ** 3 + 3 * m * m + 4 * P * m * m  # 4 m x m products, c * eye, c*eye - az, 0.25 * z
    w = P * m * m * dh                               # pinv @ bv
    out = sdpa(P * T * m, dh, dh, float_mask=True)   # F~ W: q over the m landmarks, landmark bias
    return qkvo(B, T, D) + N * dh + landmarks + a + bv + z0 + it * step + w + out   # N*dh: q * scale


def reformer_flops(B, T, D, H, cfg, causal):
    dh, C, R, half = D // H, cfg.chunk, cfg.n_hashes, cfg.n_buckets // 2
    Tc = C * (T // C + 2)                            # x padded before projecting: whole chunks, >= 2
    rows = B * H * R * Tc                            # sorted query rows over all hash rounds
    L = rows * 2 * C                                 # logits: own chunk and the one before
    project = 2 * B * Tc * D * D + B * T * D * D     # q (shared with k) and v over Tc, out_proj over T
    hashing = B * H * Tc * dh * R * half + rows * half  # einsum with the rotations, -rotated (argmax: free)
    keys = 2 * rows * dh + rows + rows * dh          # F.normalize: vector norm, clamp_min, divide
    attend = 2 * L * dh + L + 4 * L + 2 * L          # q k^T, p v; scale; logsumexp; - lse, exp
    combine = SOFTMAX * rows + 2 * rows * dh         # softmax of lse over rounds; * it, sum over rounds
    return project + hashing + keys + attend + combine  # sorting, buckets, masks (causal too): integer/bool


def synthesizer_flops(B, T, D, H, cfg, causal):
    dh = D // H
    vo = 2 * B * T * D * D                           # v_proj and out_proj (no q, k)
    mask = causal_mask(T) if causal else 0
    if cfg.mode == "dense":                          # SDPA of q = [h, 1] and k = [W2, b2] per head
        e = cfg.hidden or dh                         # hidden units per head
        width = max(e + 1, dh)                       # q, k and v zero-padded to one width
        mlp = B * T * D * H * e + B * T * H * e      # dense1 (D -> H * e), relu
        return vo + mask + mlp + sdpa(B * H * T * T, width, width, float_mask=causal)  # scale=1.0 counts
    LT = H * T * T                                   # random: a (1, H, T, T) slice of the parameter
    bias = LT if causal else 0                       # + causal bias, once for the whole batch
    return vo + mask + bias + SOFTMAX * LT + B * H * T * T * dh  # softmax, (1, H, T, T) @ v
