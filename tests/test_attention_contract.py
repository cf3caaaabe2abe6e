"""The contract every registered attention type keeps, checked for all of them via the registry.

Shapes, finite values and gradients; causal forms stay causal; padded tokens never reach real
positions; unknown options and too-long inputs fail clearly; the registry refuses bad entries.
Skips are driven by the capability flags, never by names.
"""
from __future__ import annotations

import pytest
import torch

import nasgraph.attention as attention
from nasgraph.attention import Attention, AttentionConfig, register
from nasgraph.errors import ConfigError, SequenceTooLongError
from attention_inputs import padding_mask

D, H, B = 32, 4, 2
LONGEST = 64  # the largest tested T, and max_len of bounded types
NAMES = attention.names()
FORMS = [pytest.param(name, causal, id=f"{name}-{'causal' if causal else 'full'}")
         for name in NAMES for causal in (False, True)
         if (attention.get(name).caps.causal if causal else attention.get(name).caps.noncausal)]


def build(name: str, causal: bool | None = None, max_len: int = LONGEST, **kwargs) -> Attention:
    """The type with seed 0; causal=None: its non-causal form, or the causal one for causal-only types."""
    torch.manual_seed(0)
    causal = not attention.get(name).caps.noncausal if causal is None else causal
    bounded = attention.get(name).caps.bounded
    return attention.build(name, D, H, causal=causal, max_len=max_len if bounded else None, **kwargs)


def needs_padding_support(module: Attention) -> None:
    if not module.caps.padding_mask:
        pytest.skip(f"'{module.name}' does not take a padding mask (caps.padding_mask=False)")


@pytest.mark.parametrize("T", [1, 7, LONGEST])
@pytest.mark.parametrize("name,causal", FORMS)
def test_shapes_values_and_gradients_are_finite(name, causal, T):
    module = build(name, causal).train()
    x = torch.randn(B, T, D, requires_grad=True)
    mask = padding_mask(T) if module.caps.padding_mask and T > 1 else None
    out = module(x, mask)
    assert out.shape == (B, T, D)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for pname, param in module.named_parameters():
        assert param.grad is None or torch.isfinite(param.grad).all(), f"non-finite gradient in {pname}"


@pytest.mark.parametrize("name,causal", FORMS)
def test_heads_honour_a_custom_head_dim(name, causal):
    """Heterogeneous layers build a type with their own head count and width, and no out_proj."""
    module = build(name, causal, head_dim=6, out_proj=False).eval()
    x = torch.randn(B, 9, D)
    assert module.heads(x, None).shape == (B, 9, H, 6)
    with pytest.raises(RuntimeError, match="out_proj=False"):
        module(x)


@pytest.mark.parametrize("name,causal", [f for f in FORMS if f.values[1]])
def test_causal_forms_do_not_see_the_future(name, causal):
    module = build(name, causal=True).eval()
    T = 40
    x = torch.randn(B, T, D)
    masks = [None] + ([padding_mask(T)] if module.caps.padding_mask else [])
    for mask in masks:
        real = torch.ones(B, T, dtype=torch.bool) if mask is None else mask  # padded outputs: no contract
        base = module(x, mask)
        for t in (0, 9, T // 2, T - 2):
            changed = x.clone()
            changed[:, t + 1:] += 3 * torch.randn(B, T - t - 1, D)
            out = module(changed, mask)
            past = real[:, : t + 1]
            torch.testing.assert_close(out[:, : t + 1][past], base[:, : t + 1][past], rtol=0, atol=1e-5,
                                       msg=lambda m: f"output up to {t} moved when inputs after it changed: {m}")
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:]), "perturbation had no effect at all"


@pytest.mark.parametrize("T", [9, LONGEST])
@pytest.mark.parametrize("name,causal", FORMS)
def test_padded_tokens_never_reach_real_positions(name, causal, T):
    module = build(name, causal).eval()
    needs_padding_support(module)
    mask = padding_mask(T)
    x = torch.randn(B, T, D)
    base = module(x, mask)
    noisy = x.clone()
    noisy[~mask] = 10 * torch.randn(int((~mask).sum()), D)
    torch.testing.assert_close(module(noisy, mask)[mask], base[mask], rtol=0, atol=1e-5)
    real = x.clone()
    real[mask] += torch.randn(int(mask.sum()), D)
    assert not torch.allclose(module(real, mask)[mask], base[mask]), "real tokens had no effect"


@pytest.mark.parametrize("name,causal", FORMS)
def test_fully_padded_sequence_stays_finite(name, causal):
    module = build(name, causal).eval()
    needs_padding_support(module)
    mask = padding_mask(12)
    mask[1] = False
    assert torch.isfinite(module(torch.randn(B, 12, D), mask)).all()


@pytest.mark.parametrize("name", NAMES)
def test_eval_is_deterministic(name):
    module = build(name).eval()
    if not module.caps.exact:
        pytest.skip(f"'{name}' is not deterministic at eval (caps.exact=False)")
    x = torch.randn(B, 11, D)
    assert torch.equal(module(x), module(x))


@pytest.mark.parametrize("name", NAMES)
def test_unknown_option_is_rejected_with_the_valid_ones_listed(name):
    with pytest.raises(ConfigError) as err:
        build(name, no_such_option=1)
    message = str(err.value)
    assert "no_such_option" in message and name in message
    valid = list(attention.get(name).Config.model_fields) or ["(none)"]
    assert all(option in message for option in valid), message


@pytest.mark.parametrize("name", NAMES)
def test_bounded_types_raise_on_too_long_input(name):
    if not attention.get(name).caps.bounded:
        pytest.skip(f"'{name}' is not bounded by a max_len (caps.bounded=False)")
    with pytest.raises(ConfigError, match="max_len"):
        attention.build(name, D, H)
    module = build(name, max_len=16).eval()
    assert module(torch.randn(1, 16, D)).shape == (1, 16, D)
    with pytest.raises(SequenceTooLongError, match="17.*16"):
        module(torch.randn(1, 17, D))


@pytest.mark.parametrize("name", NAMES)
def test_noncausal_request_refused_for_causal_only_types(name):
    if attention.get(name).caps.noncausal:
        pytest.skip(f"'{name}' has a non-causal form (caps.noncausal=True)")
    with pytest.raises(ConfigError, match="causal-only") as err:
        build(name, causal=False)
    assert "softmax" in str(err.value) and name not in str(err.value).split("form:")[-1]


@pytest.mark.parametrize("name", NAMES)
def test_causal_request_refused_without_a_causal_form(name):
    if attention.get(name).caps.causal:
        pytest.skip(f"'{name}' has a causal form (caps.causal=True)")
    with pytest.raises(ConfigError, match="no causal form"):
        build(name, causal=True)


# -- the registry ---------------------------------------------------------------------------------
def test_registry_refuses_duplicate_names():
    class Another(Attention):
        pass

    before = attention.get("softmax")
    with pytest.raises(ValueError, match="already registered"):
        register("softmax")(Another)
    assert attention.get("softmax") is before


def test_registry_refuses_non_attention_classes_and_foreign_configs():
    class NotAttention(torch.nn.Module):
        pass

    class BadConfig(Attention):
        Config = dict  # type: ignore[assignment]

    with pytest.raises(TypeError, match="not an Attention subclass"):
        register("zz_not_attention")(NotAttention)
    with pytest.raises(TypeError, match="AttentionConfig"):
        register("zz_bad_config")(BadConfig)
    assert "zz_not_attention" not in attention.names() and "zz_bad_config" not in attention.names()
    assert issubclass(attention.get("softmax").Config, AttentionConfig)


def test_unknown_type_lists_the_registered_ones():
    with pytest.raises(ConfigError) as err:
        attention.build("softmaxx", D, H)
    assert "did you mean 'softmax'" in str(err.value)
    assert all(name in str(err.value) for name in NAMES)
