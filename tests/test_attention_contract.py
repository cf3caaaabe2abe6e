"""The contract every registered attention type keeps, checked for all of them via the registry.

The checks live in nasgraph.attention.contract (`nasgraph check-attention` runs the same ones on a
plug-in): shapes, finite values and gradients; causal forms stay causal; padded tokens never reach
real positions; unknown options and too-long inputs fail clearly. Skips are driven by the capability
flags, never by names. The registry's own refusals are tested below.
"""
from __future__ import annotations

import pytest
import torch

import nasgraph.attention as attention
from nasgraph.attention import Attention, AttentionConfig, register
from nasgraph.attention.contract import CHECKS, D, H, Skipped, forms
from nasgraph.errors import ConfigError

NAMES = attention.names()
CASES = [pytest.param(check, name, causal, id=f"{check.name}-{name}-{'causal' if causal else 'full'}")
         for check in CHECKS for name in NAMES for causal in forms(name, check)]


@pytest.mark.parametrize("check,name,causal", CASES)
def test_contract(check, name, causal):
    try:
        check.run(name, causal)
    except Skipped as why:
        pytest.skip(str(why))


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
