"""Every registered attention type against a slow reference written from its paper's formula.

References live in tests/refs_kernel.py and tests/refs_pattern.py (REFERENCES: name -> fn(module, x,
mask) -> (B, T, d_model)); a registered type without one fails here. Each type is compared in its
non-causal and causal forms, with and without padding, in float32 (the numerics the module really
runs in) and, when the reference computes in float64, with the module in float64 (the math, tight).
"""
from __future__ import annotations

import pytest
import torch

import nasgraph.attention as attention
from refs_kernel import REFERENCES as KERNEL_REFERENCES
from refs_recurrent import REFERENCES as RECURRENT_REFERENCES
from attention_inputs import padding_mask

try:
    from refs_pattern import REFERENCES as PATTERN_REFERENCES
except ModuleNotFoundError as err:  # the pattern family's references are not written yet
    if err.name != "refs_pattern":
        raise
    PATTERN_REFERENCES = {}

REFERENCES = {**KERNEL_REFERENCES, **PATTERN_REFERENCES, **RECURRENT_REFERENCES}
D, H, B = 32, 4, 2
# Options beyond the defaults that take a different code path (segments longer than 1, random mode).
VARIANTS = {"nystromformer": [{"landmarks": 8}], "synthesizer": [{"mode": "random"}, {"hidden": 5}],
            "linear": [{"chunk": 4}], "performer": [{"n_features": 24, "chunk": 8}],
            "reformer": [{"n_hashes": 3, "chunk": 4, "n_buckets": 4}],
            "softmax": [{"n_kv_heads": 2}, {"n_kv_heads": 1, "impl": "math"}],
            "sliding_window": [{"window": 4, "sinks": 2}, {"window": 3, "sinks": 5, "n_global": 2}],
            "retention": [{"chunk": 4}], "gla": [{"chunk": 5, "gate": False}],
            "deltanet": [{"chunk": 4, "norm": False}], "gated_deltanet": [{"chunk": 8, "gate": False, "norm": False}],
            "ssd": [{"chunk": 4, "d_state": 6}]}
FORMS = [pytest.param(name, causal, options, id=f"{name}-{'causal' if causal else 'full'}-{options or 'default'}")
         for name in attention.names() for causal in (False, True)
         for options in [{}] + VARIANTS.get(name, [])
         if (attention.get(name).caps.causal if causal else attention.get(name).caps.noncausal)]


def build(name: str, causal: bool, max_len: int = 64, **options) -> attention.Attention:
    torch.manual_seed(0)
    cls = attention.get(name)
    return attention.build(name, D, H, causal=causal, max_len=max_len if cls.caps.bounded else None,
                           **options).eval()


@pytest.mark.parametrize("name", attention.names())
def test_every_type_has_a_reference(name):
    assert name in REFERENCES, (f"attention '{name}' has no reference implementation: add one to "
                                "tests/refs_kernel.py or tests/refs_pattern.py")


@pytest.mark.parametrize("T", [1, 13, 40])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "padded"])
@pytest.mark.parametrize("name,causal,options", FORMS)
def test_matches_reference(name, causal, options, masked, T):
    if name not in REFERENCES:
        pytest.fail(f"attention '{name}' has no reference implementation")
    module = build(name, causal, **options)
    if masked and not module.caps.padding_mask:
        pytest.skip(f"'{name}' does not support padding masks (caps.padding_mask=False)")
    torch.manual_seed(1)
    x = torch.randn(B, T, D)
    mask = padding_mask(T) if masked else None
    real = mask if mask is not None else torch.ones(B, T, dtype=torch.bool)
    with torch.no_grad():
        expected = REFERENCES[name](module, x, mask)                  # (B, T, D)
        got32 = module(x, mask)
        got64 = module.double()(x.double(), mask)
    if expected.dtype == torch.float64:  # a float64 reference pins the math down to rounding
        torch.testing.assert_close(got64[real], expected[real], rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(got32[real].double(), expected[real].double(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal", [False, True])
def test_softmax_matches_torch_multihead_attention(causal):
    T = 24
    module = build("softmax", causal)
    mha = torch.nn.MultiheadAttention(D, H, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([module.q_proj.weight, module.k_proj.weight, module.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([module.q_proj.bias, module.k_proj.bias, module.v_proj.bias]))
        mha.out_proj.weight.copy_(module.out_proj.weight)
        mha.out_proj.bias.copy_(module.out_proj.bias)
    x = torch.randn(B, T, D)
    mask = padding_mask(T)
    mask[1, 0] = True  # the first position of each row is real, so no causal row is fully masked
    future = torch.ones(T, T, dtype=torch.bool).triu(1) if causal else None
    with torch.no_grad():
        expected, _ = mha(x, x, x, key_padding_mask=~mask, attn_mask=future, need_weights=False)
        got = module(x, mask)
    torch.testing.assert_close(got[mask], expected[mask], rtol=1e-5, atol=1e-6)


def test_nystrom_pinv_iteration_converges_to_moore_penrose():
    from nasgraph.attention.nystromformer import iterative_pinv

    torch.manual_seed(0)
    a = torch.softmax(torch.randn(3, 8, 8, dtype=torch.float64) * 3, dim=-1)  # row-stochastic
    torch.testing.assert_close(iterative_pinv(a, 30), torch.linalg.pinv(a), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("causal", [False, True])
def test_performer_approximates_softmax_with_many_features(causal):
    """FAVOR+ is an unbiased softmax-kernel estimate: with 4096 features it lands close to softmax."""
    performer = build("performer", causal, n_features=4096)
    softmax = build("softmax", causal)
    softmax.load_state_dict({k: v for k, v in performer.state_dict().items() if k != "features"})
    x = 0.5 * torch.randn(B, 16, D)
    with torch.no_grad():
        exact, approx = softmax(x), performer(x)
    assert (approx - exact).abs().max() < 0.03, float((approx - exact).abs().max())


def test_performer_redraws_features_only_in_training_mode():
    fixed = build("performer", False)
    redrawn = build("performer", False, redraw=True)
    x = torch.randn(B, 8, D)
    for module, changes_in_training in ((fixed, False), (redrawn, True)):
        before = module.features.clone()
        module.eval()(x)
        assert torch.equal(module.features, before)
        module.train()(x)
        assert torch.equal(module.features, before) is not changes_in_training
