"""Type-specific behaviour of the sparse-pattern, AFT and DCMHA attention types.

The registry-wide tests run these types with their default options, where blocks of 32-64 cover a
whole short test sequence; here small blocks and windows make every code path (several blocks,
neighbours, global and random blocks, T not a multiple of the block) matter, and the AFT position
biases and DCMHA dynamic weights are scaled up from their tiny inits so they change the output.
"""
from __future__ import annotations

import pytest
import torch

import nasgraph.attention as attention
from nasgraph.attention._blocks import neighbour_blocks, to_blocks
from nasgraph.errors import SequenceTooLongError
from refs_pattern import REFERENCES, _compose_naive, _dcmha_weights

D, H, B, MAX_LEN = 32, 4, 2, 64

VARIANTS = [
    ("local", {"window": 8}),
    ("local", {"window": 1}),
    ("sliding_window", {"window": 4}),
    ("sliding_window", {"window": 5, "n_global": 3}),
    ("bigbird", {"block": 4, "n_random": 2}),
    ("bigbird", {"block": 3, "window_blocks": 2, "n_global": 2, "n_random": 3, "seed": 7}),
    ("sparse", {"block": 4, "n_summary": 2}),
    ("sparse", {"block": 7}),
    ("aft_full", {"pos_dim": 8}),
    ("aft_local", {"window": 5}),
    ("aft_simple", {}),
    ("aft_conv", {"kernel": 4}),
    ("aft_conv", {"kernel": 1}),
    ("dcmha", {"static_mix": True}),
    ("dcmha", {"rank": 1, "pre": False}),
]


def build(name: str, causal: bool = False, **options) -> attention.Attention:
    torch.manual_seed(0)
    bounded = attention.get(name).caps.bounded
    module = attention.build(name, D, H, causal=causal, max_len=MAX_LEN if bounded else None, **options)
    with torch.no_grad():  # make the small-init parameters matter
        if hasattr(module, "pos_u"):
            module.pos_u.normal_(0, 0.7), module.pos_v.normal_(0, 0.7)
        if name == "aft_conv":
            module.filters.normal_(0, 1.0)
        if name == "dcmha":
            module.dyn_out.normal_(0, 0.3), module.dyn_gate.weight.normal_(0, 0.3)
            if module.static_mix is not None:
                module.static_mix.normal_(0, 0.3)
    return module.eval()


def padding_mask(T: int) -> torch.Tensor:
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, T - T // 3:] = False
    mask[1, : T // 4] = False
    return mask


@pytest.mark.parametrize("T", [1, 13, 30])
@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name,options", VARIANTS, ids=[f"{n}-{o}" for n, o in VARIANTS])
def test_small_blocks_match_reference(name, options, causal, T):
    module = build(name, causal, **options)
    x = torch.randn(B, T, D)
    for mask in (None, padding_mask(T)):
        real = torch.ones(B, T, dtype=torch.bool) if mask is None else mask
        with torch.no_grad():
            got, expected = module(x, mask), REFERENCES[name](module, x, mask)
        torch.testing.assert_close(got[real].double(), expected[real], rtol=1e-4, atol=2e-5)


def test_blocks_helpers_pad_and_gather_neighbours():
    t = torch.arange(5.0)[None, :, None]                                # (1, T=5, 1)
    blocks = to_blocks(t, 2)                                            # (1, 3, 2, 1)
    assert blocks[0, :, :, 0].tolist() == [[0, 1], [2, 3], [4, 0]]
    near = neighbour_blocks(blocks, 1, 1)[0, :, :, 0]                   # (3, 6)
    assert near.tolist() == [[0, 0, 0, 1, 2, 3], [0, 1, 2, 3, 4, 0], [2, 3, 4, 0, 0, 0]]


@pytest.mark.parametrize("causal", [False, True])
def test_local_equals_block_diagonal_mask_when_T_is_not_a_multiple_of_the_block(causal):
    module = build("local", causal, window=6)
    x = torch.randn(1, 17, D)                                           # blocks 6 + 6 + 5
    i, j = torch.arange(17)[:, None], torch.arange(17)[None, :]
    allowed = (i // 6 == j // 6) & ((j <= i) if causal else True)
    q, k, v = (p(x).view(1, 17, H, -1).transpose(1, 2) for p in (module.q_proj, module.k_proj, module.v_proj))
    logits = (q @ k.transpose(-1, -2) * module.scale).masked_fill(~allowed, float("-inf"))
    expected = module.out_proj((logits.softmax(-1) @ v).transpose(1, 2).flatten(2))
    with torch.no_grad():
        torch.testing.assert_close(module(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("causal", [False, True])
def test_aft_local_weight_outside_the_window_is_exp0_not_0(causal):
    """With window 1 only w[t, t] is learned: make it -60 and every other key weighs exp(0) = 1."""
    module = build("aft_local", causal, window=1, pos_dim=1)
    T = 9
    with torch.no_grad():
        module.k_proj.weight.zero_(), module.k_proj.bias.zero_()         # exp(K) = 1 everywhere
        module.pos_u.fill_(1.0), module.pos_v.fill_(-60.0)               # w[t, t] = -60 (off-window ignored)
        x = torch.randn(1, T, D)
        q, v = module.q_proj(x), module.v_proj(x)                        # (1, T, C)
        got = module.heads(x).flatten(2)                                 # (1, T, C)
    for t in range(1, T):
        others = [s for s in range(T) if s != t and (s < t or not causal)]
        expected = torch.sigmoid(q[0, t]) * v[0, others].mean(0)
        torch.testing.assert_close(got[0, t], expected, rtol=1e-5, atol=1e-6)


def test_dcmha_compose_equals_naive_per_position_head_matrices():
    module = build("dcmha", static_mix=True).double()
    x = torch.randn(B, 6, D, dtype=torch.float64)
    a = torch.randn(B, H, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        fast = module.compositions(x)["post"](a, slice(0, 6), slice(0, 6))
        naive = _compose_naive(a, _dcmha_weights(module, x)["post"], module.static_mix[1])
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-12)


def test_dcmha_without_compose_is_plain_softmax_attention():
    plain = build("dcmha", pre=False, post=False)
    soft = attention.build("softmax", D, H, impl="math").eval()
    soft.load_state_dict(plain.state_dict(), strict=False)
    x = torch.randn(B, 11, D)
    with torch.no_grad():
        torch.testing.assert_close(plain(x, padding_mask(11)), soft(x, padding_mask(11)))


def test_bigbird_random_pattern_is_fixed_seeded_and_valid():
    a, b = build("bigbird", block=2, n_random=2), build("bigbird", block=2, n_random=2)
    other = build("bigbird", block=2, n_random=2, seed=1)
    assert "random_scores" in a.state_dict()
    idx, picked = a.random_blocks(12, torch.device("cpu"))               # (12, 2)
    assert torch.equal(idx, b.random_blocks(12, torch.device("cpu"))[0])
    assert not torch.equal(idx, other.random_blocks(12, torch.device("cpu"))[0])
    for i in range(12):
        for j in idx[i][picked[i]].tolist():
            assert abs(i - j) > 1 and j >= 1 and j < 12                  # neither window nor global
    # too few candidate blocks: the draw shrinks instead of failing (only block 0 has one: block 2)
    idx, picked = a.random_blocks(3, torch.device("cpu"))
    assert picked.sum(1).tolist() == [1, 0, 0] and idx[0][picked[0]].tolist() == [2]


@pytest.mark.parametrize("name", ["bigbird", "aft_full", "aft_local"])
def test_bounded_types_name_the_limit(name):
    module = attention.build(name, D, H, max_len=16).eval()
    with pytest.raises(SequenceTooLongError, match="exceeds max_len 16"):
        module(torch.randn(1, 17, D))
    with pytest.raises(SequenceTooLongError, match="max_len 16"):
        module.heads(torch.randn(1, 17, D))


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
@pytest.mark.parametrize("name,options", VARIANTS, ids=[f"{n}-{o}" for n, o in VARIANTS])
def test_huge_activations_stay_finite(name, options, causal):
    module = build(name, causal, **options)
    x = torch.randn(B, 20, D) * 1e3
    with torch.no_grad():
        assert torch.isfinite(module(x, padding_mask(20))).all()


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_aft_full_chunked_eager_path_matches_reference(causal, monkeypatch):
    import nasgraph.attention.aft_full as aft_full
    monkeypatch.setattr(aft_full, "CHUNK", 8)                           # 30 rows -> 4 chunks
    module = build("aft_full", causal)
    x, mask = torch.randn(B, 30, D), padding_mask(30)
    with torch.no_grad():
        got, expected = module(x, mask), REFERENCES["aft_full"](module, x, mask)
    torch.testing.assert_close(got[mask].double(), expected[mask], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("causal", [False, True], ids=["full", "causal"])
def test_dcmha_chunked_eager_path_matches_reference(causal, monkeypatch):
    import nasgraph.attention.dcmha as dcmha
    monkeypatch.setattr(dcmha, "CHUNK_ELEMENTS", B * H * 30 * 7)         # 7 query rows per chunk at T=30
    module = build("dcmha", causal, static_mix=True)
    x, mask = torch.randn(B, 30, D), padding_mask(30)
    with torch.no_grad():
        got, expected = module(x, mask), REFERENCES["dcmha"](module, x, mask)
    torch.testing.assert_close(got[mask].double(), expected[mask], rtol=1e-4, atol=2e-5)
