"""The recurrent types' two forms agree with each other and with the per-token reference.

chunked (forward, training) == recurrent (init_state + step, decoding) == reference (refs_recurrent),
in float64 to rounding and in float32 within 1e-5, at several chunk sizes (a chunk longer than the
sequence, one that does not divide it, one of a single position). Registry-driven: every type with
caps.recurrent is covered.
"""
from __future__ import annotations

import pytest
import torch

import nasgraph.attention as attention
from nasgraph.errors import ConfigError
from refs_recurrent import REFERENCES

D, H, B, T = 32, 4, 2, 23
RECURRENT = [n for n in attention.names() if attention.get(n).caps.recurrent]


def build(name: str, **options) -> attention.Attention:
    torch.manual_seed(0)
    return attention.build(name, D, H, causal=True, **options).eval()


def stepped(module, x: torch.Tensor) -> torch.Tensor:
    """Run the decoding form over x: (B, T, D) -> (B, T, D)."""
    state = module.init_state(x.shape[0], dtype=x.dtype)
    outs = []
    for t in range(x.shape[1]):
        y, state = module.step(x[:, t], state, t)
        outs.append(y)
    return torch.stack(outs, 1)


def test_every_recurrent_type_has_a_reference():
    assert RECURRENT, "no recurrent types registered"
    assert set(RECURRENT) <= set(REFERENCES), set(RECURRENT) - set(REFERENCES)


@pytest.mark.parametrize("chunk", [1, 5, 64])
@pytest.mark.parametrize("name", RECURRENT)
def test_chunked_equals_recurrent_equals_reference(name, chunk):
    module = build(name, chunk=chunk)
    torch.manual_seed(1)
    x = torch.randn(B, T, D)
    with torch.no_grad():
        expected = REFERENCES[name](module, x, None)                   # (B, T, D) float64
        chunked32, stepped32 = module(x), stepped(module, x)
        module.double()
        chunked64, stepped64 = module(x.double()), stepped(module, x.double())
    for got in (chunked64, stepped64):
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
    for got in (chunked32, stepped32):
        torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", RECURRENT)
def test_short_conv_chunked_form_equals_the_reference(name):
    """short_conv: 4 (Mamba-2's conv over x, B, C; fla's over q, k, v): chunked == stepped == prefill then
    steps == the per-token reference."""
    module = build(name, chunk=5, short_conv=4).double()
    torch.manual_seed(1)
    x = torch.randn(B, T, D, dtype=torch.float64)
    with torch.no_grad():
        got, expected = module(x), REFERENCES[name](module, x, None)
        plain = build(name, chunk=5).double()
        plain.load_state_dict({k: v for k, v in module.state_dict().items() if "short_conv" not in k})
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)
        assert not torch.allclose(plain(x), got)                      # the conv is in use
        head = module(x[:, :7])                                        # causal: a prefix sees no later token
    torch.testing.assert_close(head, got[:, :7], rtol=1e-9, atol=1e-10)
    with torch.no_grad():
        torch.testing.assert_close(stepped(module, x), expected, rtol=1e-9, atol=1e-10)
        _, state = module.prefill(x[:, :7])                            # chunked prefix, then token steps
        assert [n for n, _ in module.state_shapes()] == ["state", "conv"] and state[1].shape[1] == 3
        for t in range(7, T):
            y, state = module.step(x[:, t], state, t)
            torch.testing.assert_close(y, expected[:, t], rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", RECURRENT)
def test_state_layout_is_per_head_dk_by_dv(name):
    module = build(name)
    state = module.init_state(3)
    assert len(state) == 1 and state[0].shape == (3, H, module.key_dim, D // H) and not state[0].any()
    y, new = module.step(torch.randn(3, D), state, 0)
    assert y.shape == (3, D) and new[0].shape == state[0].shape
    o, _ = module.step_heads(torch.randn(3, D), state, 0)
    assert o.shape == (3, H, D // H)


@pytest.mark.parametrize("name", RECURRENT)
def test_long_sequence_in_float32_stays_exact(name):
    """Strong decays over 600 positions: cumulative log-decays far below exp's range must not overflow."""
    module = build(name, chunk=64)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(4.0)                                                # large gates and keys
    x = torch.randn(1, 600, D)
    with torch.no_grad():
        got = module(x)
        exact = module.double()(x.double())
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got.double(), exact, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", RECURRENT)
def test_gradients_of_chunked_and_recurrent_forms_agree(name):
    module = build(name, chunk=4).double()
    x = torch.randn(B, 9, D, dtype=torch.float64)
    grads = []
    for run in (module, lambda t: stepped(module, t)):
        module.zero_grad()
        run(x).square().sum().backward()
        grads.append([p.grad.clone() for p in module.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", RECURRENT)
def test_causal_only_types_refuse_the_noncausal_form(name):
    assert not attention.get(name).caps.noncausal
    with pytest.raises(ConfigError, match=f"'{name}' is causal-only") as err:
        attention.build(name, D, H, causal=False)
    assert "softmax" in str(err.value)


@pytest.mark.parametrize("name", RECURRENT)
def test_spec_refuses_a_causal_only_type_in_a_noncausal_model(name, write_spec):
    from nasgraph.errors import SpecError
    from nasgraph.spec import load_spec

    path = write_spec(f"""
        name: t
        task: {{kind: tiny, max_len: 12, n_train: 8, n_val: 8, n_test: 8}}
        model:
          d_model: 16
          n_heads: 2
          n_layers: 1
          attention:
            candidates: [softmax, {name}]
        """)
    with pytest.raises(SpecError) as err:
        load_spec(path)
    message = str(err.value)
    assert name in message and "causal: true" in message and "softmax" in message
    assert f"{path.name}:" in message                                  # located: file and line


@pytest.mark.parametrize("C", [1, 5, 8, 32])
def test_exported_chunk_inverse_equals_the_exact_inverse(C):
    """The delta rule's (I + L)^-1 as exported (by halves, plain ops) is the inverse, at any chunk size
    (5: padded to a power of two), with L as the chunk form builds it (beta k k^T, unit keys)."""
    from nasgraph.attention._recurrent import blocked_unit_lower_inverse

    torch.manual_seed(0)
    k = torch.nn.functional.normalize(torch.randn(3, 2, C, 16, dtype=torch.float64), dim=-1)  # (B, H, C, dk)
    beta = torch.rand(3, 2, C, 1, dtype=torch.float64)                  # (B, H, C, 1)
    L = ((k * beta) @ k.transpose(-2, -1)).tril(-1)                    # (B, H, C, C)
    exact = torch.linalg.inv(L + torch.eye(C, dtype=torch.float64))    # (B, H, C, C)
    torch.testing.assert_close(blocked_unit_lower_inverse(L), exact, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n_kv_heads", [None, 2])
def test_softmax_short_conv_is_causal_in_use_and_decodes(n_kv_heads):
    """softmax's short_conv (the recurrent types' convolution on q, k, v): it changes the output, a
    prefix sees no later token, and stepping (KV cache plus the convolution's history) equals forward."""
    module = build("softmax", short_conv=4, n_kv_heads=n_kv_heads).double()
    plain = build("softmax", n_kv_heads=n_kv_heads).double()
    plain.load_state_dict({k: v for k, v in module.state_dict().items() if "short_conv" not in k})
    torch.manual_seed(1)
    x = torch.randn(B, T, D, dtype=torch.float64)
    with torch.no_grad():
        got = module(x)
        assert not torch.allclose(plain(x), got)                      # the conv is in use
        torch.testing.assert_close(module(x[:, :7]), got[:, :7], rtol=1e-9, atol=1e-10)
        torch.testing.assert_close(stepped(module, x), got, rtol=1e-9, atol=1e-10)
        assert [n for n, _ in module.state_shapes()] == ["k_cache", "v_cache", "conv"]
