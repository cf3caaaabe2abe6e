"""Every registered attention type: counted FLOPs == a formula derived by hand from its math.

HAND_FLOPS[name](B, T, D, H, config, causal) -> FLOPs of one eval forward on x: (B, T, D), no mask,
under the conventions of nasgraph.flops (1 multiply-add = 1; elementwise = 1 per output element;
reductions and cumsum = 1 per input element; softmax = 5 per element; SDPA dense, causal not halved).
A registered type without a formula fails: write its formula (tests/flops_formulas*.py, flops_recurrent.py)
when you add a type.
"""
from __future__ import annotations

from typing import Any, Callable

import pytest

from flops_formulas import (SOFTMAX, bigbird_flops, cosformer_flops, linear_flops, linformer_flops, local_flops,
    performer_flops, sliding_window_flops, softmax_flops, sparse_flops)
from flops_formulas_more import (aft_conv_flops, aft_full_flops, aft_local_flops, aft_simple_flops, dcmha_flops,
    nystromformer_flops, reformer_flops, synthesizer_flops)
from flops_recurrent import RECURRENT_FLOPS
from nasgraph import attention
from nasgraph.flops import attention_flops


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
                    f"(tests/flops_formulas*.py): derive one from its code")
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
