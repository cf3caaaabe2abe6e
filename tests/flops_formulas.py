"""Hand-derived FLOP formulas, part 1: the shared pieces and the softmax, kernel, low-rank, local and
block-sparse types, for tests/test_attention_flops.py.

HAND_FLOPS[name](B, T, D, H, config, causal) -> FLOPs of one eval forward on x: (B, T, D), no mask,
under the conventions of nasgraph.flops (1 multiply-add = 1; elementwise = 1 per output element;
reductions and cumsum = 1 per input element; softmax = 5 per element; SDPA dense, causal not halved).
"""
from __future__ import annotations

import math

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
