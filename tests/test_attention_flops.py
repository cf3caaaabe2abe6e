"""Every registered attention type: counted FLOPs == a formula derived by hand from its math.

HAND_FLOPS[name](B, T, D, H, config, causal) -> FLOPs of one eval forward on x: (B, T, D), no mask,
under the conventions of nasgraph.flops (1 multiply-add = 1; elementwise = 1 per output element;
reductions and cumsum = 1 per input element; softmax = 5 per element; SDPA dense, causal not halved).
A registered type without a formula fails: write its formula when you add a type.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import pytest

from nasgraph import attention
from nasgraph.flops import attention_flops
from flops_recurrent import RECURRENT_FLOPS

SOFTMAX = 5  # FLOPs per softmax element (nasgraph.flops.SOFTMAX_FLOPS, restated to be checked)


# -- shared pieces -------------------------------------------------------------------------------------
def qkvo(B: int, T: int, D: int) -> int:
    """q, k, v projections D -> D and the output projection D -> D."""
    return 4 * B * T * D * D


def causal_mask(T: int) -> int:
    """base.causal_bias: the (T, T) bool upper triangle times NEG_INF."""
    return T * T


def chunked_length(T: int, causal: bool, chunk: int) -> int:
    """Causal kernel types pad the input x to whole chunks before projecting (_kernels.pad_to_chunks)."""
    return math.ceil(T / chunk) * chunk if causal else T


def kernel_qkvo(B: int, T: int, Tc: int, D: int) -> int:
    """q, k, v projections over the Tc (padded) positions, out_proj over the T real ones."""
    return 3 * B * Tc * D * D + B * T * D * D


def normalised_linear(B: int, H: int, Tc: int, m: int, dv: int, causal: bool, chunk: int) -> int:
    """_kernels.linear_attention on Tc positions, features of width m, values of width dv.

    Causal: values carry a ones column (w = dv + 1) so the normaliser rides along in the products.
    Non-causal: the normaliser is a separate key sum and mat-vec.
    """
    P, w = B * H, dv + 1
    N = P * Tc                                       # query rows
    tail = N + N * dv                                # den.clamp_min, num / den
    if not causal:
        kv = P * m * Tc * dv + P * Tc * m            # k^T v; z = k.sum over keys
        return kv + N * m * dv + N * m + tail        # q @ kv, q @ z
    n = Tc // chunk                                  # chunks
    per_chunk_state = P * Tc * m * w                 # k_c^T v_c per chunk
    prefix = P * (n - 1) * m * w                     # cumsum over the chunks before
    inter = P * Tc * w * m                           # q_c @ state
    scores = P * Tc * chunk * m                      # q_c @ k_c^T
    intra = P * Tc * chunk * w                       # masked scores @ v_c
    return per_chunk_state + prefix + inter + scores + intra + P * Tc * w + tail


def sdpa(logits: int, e: int, ev: int, float_mask: bool = False) -> int:
    """F.scaled_dot_product_attention with `logits` entries, q/k width e, v width ev.

    q k^T, p v, the scale (counted even when scale=1.0), softmax, + a float attn_mask.
    """
    return logits * (e + ev + 1 + SOFTMAX + int(float_mask))


# -- one formula per type ------------------------------------------------------------------------------
def softmax_flops(B, T, D, H, cfg, causal):
    dh, L = D // H, B * H * T * T                    # L logits
    kv = (cfg.n_kv_heads or H) * dh                  # grouped-query: narrower k, v projections
    core = 2 * L * dh + L + SOFTMAX * L              # q k^T, p v, scale, softmax (same for sdpa/math)
    if causal and cfg.impl == "math":                # sdpa without padding: is_causal, no bias (free)
        core += causal_mask(T) + L                   # build the bias, add it to every logit
    return 2 * B * T * D * D + 2 * B * T * D * kv + core  # q, out_proj; k, v (heads repeated: free)


def linear_flops(B, T, D, H, cfg, causal):
    dh, Tc = D // H, chunked_length(T, causal, cfg.chunk)
    features = 2 * (2 * B * H * Tc * dh)             # elu(x) + 1 for q and k
    return kernel_qkvo(B, T, Tc, D) + features + normalised_linear(B, H, Tc, dh, dh, causal, cfg.chunk)


def cosformer_flops(B, T, D, H, cfg, causal):
    dh, Tc = D // H, chunked_length(T, causal, cfg.chunk)
    N = B * H * Tc
    angles = 2 * Tc + 2 * Tc                         # (pi/2) * i / M, then sin and cos
    features = 2 * (N * dh + angles + 2 * N * dh)    # q and k: relu, angles, f*sin and f*cos
    return kernel_qkvo(B, T, Tc, D) + features + normalised_linear(B, H, Tc, 2 * dh, dh, causal, cfg.chunk)


def performer_flops(B, T, D, H, cfg, causal):
    dh, m, Tc = D // H, cfg.n_features, chunked_length(T, causal, cfg.chunk)
    N = B * H * Tc
    half_w2 = 2 * m * dh + m                         # 0.5 * (w * w).sum(-1)
    q_feat = m * dh + N * m * (dh + 1) + 2 * N * m   # w * s; [q, 1] @ [w s, |w|^2/2]^T; amax, -=
    k2 = 2 * N * dh + N                              # (k * k).sum(-1) * s^2
    k_feat = m * dh + m + N * m * (dh + 2)           # w * s, h - |w|^2/2; [k, 1, |k|^2] @ w_k^T
    features = half_w2 + q_feat + k2 + k_feat + 2 * N * m  # + exp of both
    return kernel_qkvo(B, T, Tc, D) + features + normalised_linear(B, H, Tc, m, dh, causal, cfg.chunk)


def linformer_flops(B, T, D, H, cfg, causal):
    dh, P, k = D // H, B * H, cfg.k
    project = 2 * P * k * T * dh                     # E[:, :T] @ k and F[:, :T] @ v
    logits = P * T * k * dh + P * T * k              # q (E k)^T, scale
    return qkvo(B, T, D) + project + logits + SOFTMAX * P * T * k + P * T * k * dh


def local_flops(B, T, D, H, cfg, causal):
    dh, w = D // H, cfg.window
    nb = math.ceil(T / w)                            # blocks; T padded to nb * w after projecting
    L = B * nb * H * w * w                           # logits of all blocks
    return qkvo(B, T, D) + 2 * L * dh + L * (1 + SOFTMAX + 1)  # SDPA with a float mask (built by where: free)


def block_sdpa(B: int, H: int, dh: int, rows: int, keys: int) -> int:
    """_blocks.block_attention: SDPA with a float mask (bool -> 0 / NEG_INF by torch.where: free)."""
    return sdpa(B * H * rows * keys, dh, dh, float_mask=True)


def global_rows(B: int, H: int, dh: int, T: int, g: int, causal: bool) -> int:
    """_blocks.global_rows without a padding mask: full attention of g queries over T keys."""
    rows = B * H * g * T
    return rows * (2 * dh + 1 + SOFTMAX) + (g * T + rows if causal else 0)  # causal: (g, T) bias, add


def bigbird_flops(B, T, D, H, cfg, causal):
    dh, b = D // H, cfg.block
    nb = math.ceil(T / b)
    G = min(cfg.n_global * b, T)                     # global positions that exist
    window = (cfg.window_blocks + 1 + (0 if causal else cfg.window_blocks)) * b
    keys = G + window + cfg.n_random * b             # random slots exist even when not picked (masked)
    flops = qkvo(B, T, D) + block_sdpa(B, H, dh, nb * b, keys)
    return flops + (global_rows(B, H, dh, T, G, causal) if G else 0)


def sparse_flops(B, T, D, H, cfg, causal):
    dh, l = D // H, cfg.block
    nb = math.ceil(T / l)
    keys = nb * cfg.n_summary + l                    # every block's summary slots + the own block
    return qkvo(B, T, D) + block_sdpa(B, H, dh, nb * l, keys)


def sliding_window_flops(B, T, D, H, cfg, causal):
    dh, w = D // H, cfg.window
    g = min(cfg.n_global, T)                         # global positions that exist
    s = min(max(cfg.n_global, cfg.sinks), T)         # keys of every query: global and sink positions
    nb = math.ceil(T / w)                            # query blocks of w (T padded to nb * w)
    keys = s + (2 if causal else 3) * w              # globals/sinks + previous, own (+ next) block
    flops = qkvo(B, T, D) + block_sdpa(B, H, dh, nb * w, keys)
    return flops + (global_rows(B, H, dh, T, g, causal) if g else 0)


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


HAND_FLOPS: dict[str, Callable[..., int]] = {
    "softmax": softmax_flops,
    "linear": linear_flops,
    "cosformer": cosformer_flops,
    "performer": performer_flops,
    "linformer": linformer_flops,
    "local": local_flops,
    "aft_simple": aft_simple_flops,
    "aft_full": aft_full_flops,
    "aft_local": aft_local_flops,
    "aft_conv": aft_conv_flops,
    "dcmha": dcmha_flops,
    "bigbird": bigbird_flops,
    "sparse": sparse_flops,
    "sliding_window": sliding_window_flops,
    "nystromformer": nystromformer_flops,
    "reformer": reformer_flops,
    "synthesizer": synthesizer_flops,
    **RECURRENT_FLOPS,
}

# Extra option sets per type, beyond the defaults (e.g. several causal chunks, a padded last chunk).
EXTRA_OPTIONS: dict[str, list[dict[str, Any]]] = {
    "softmax": [{"impl": "math"}, {"n_kv_heads": 2}, {"n_kv_heads": 1, "impl": "math"}],
    "retention": [{"chunk": 8}, {"chunk": 6, "norm": False, "gate": False}],
    "gla": [{"chunk": 8}, {"chunk": 3, "gate": False}],
    "deltanet": [{"chunk": 8}, {"chunk": 6, "norm": False}],
    "gated_deltanet": [{"chunk": 8}, {"chunk": 7, "gate": False}],
    "ssd": [{"chunk": 8, "d_state": 12}],
    "linear": [{"chunk": 8}],
    "cosformer": [{"chunk": 8}],
    "performer": [{"chunk": 6, "n_features": 12}],
    "linformer": [{"k": 7}],
    "local": [{"window": 8}],
    "bigbird": [{"block": 4}, {"block": 4, "n_global": 0, "n_random": 0},
                {"block": 3, "window_blocks": 2, "n_random": 1, "n_global": 2}],
    "sparse": [{"block": 4}, {"block": 6, "n_summary": 2}],
    "aft_full": [{"pos_dim": 5}],
    "aft_local": [{"window": 4, "pos_dim": 3}, {"window": 6}],
    "aft_conv": [{"kernel": 4}],
    "dcmha": [{"rank": 1, "static_mix": True}, {"pre": False, "hidden_mult": 2}, {"post": False}],
    "sliding_window": [{"window": 4}, {"window": 6, "n_global": 3}, {"window": 8, "n_global": 30},
                       {"window": 4, "sinks": 2}, {"window": 5, "sinks": 3, "n_global": 1}],
    "nystromformer": [{"landmarks": 4}, {"landmarks": 6, "pinv_iterations": 2}],
    "reformer": [{"chunk": 4, "n_hashes": 2}, {"chunk": 7, "n_buckets": 4, "n_hashes": 3}],
    "synthesizer": [{"mode": "random"}, {"hidden": 12}, {"hidden": 5}],
}

B, T, D, H = 2, 20, 32, 4


def _cases():
    for name in attention.names():
        for causal in (False, True):
            for options in [{}, *EXTRA_OPTIONS.get(name, [])]:
                label = "-".join([name, "causal" if causal else "full",
                                  *(f"{k}={v}" for k, v in options.items())])
                yield pytest.param(name, causal, options, id=label)


@pytest.mark.parametrize("name, causal, options", list(_cases()))
def test_counted_flops_match_hand_formula(name, causal, options):
    if name not in HAND_FLOPS:
        pytest.fail(f"attention '{name}' has no hand-derived FLOP formula in HAND_FLOPS "
                    f"(tests/test_attention_flops.py): derive one from its code")
    if causal and not attention.get(name).caps.causal:
        pytest.skip(f"attention '{name}' has no causal form")
    if not causal and not attention.get(name).caps.noncausal:
        pytest.skip(f"attention '{name}' is causal-only (caps.noncausal=False)")
    config = attention.parse_options(name, options)
    counted = attention_flops(name, D, H, T, batch=B, causal=causal, **options).total
    assert counted == HAND_FLOPS[name](B, T, D, H, config, causal)


def test_every_formula_names_a_registered_type():
    stale = set(HAND_FLOPS) - set(attention.names())
    assert not stale, f"formulas for unregistered types: {sorted(stale)}"


def test_softmax_constant_is_the_library_one():
    from nasgraph.flops import SOFTMAX_FLOPS

    assert SOFTMAX_FLOPS == SOFTMAX
