"""Model-level decoding (nasgraph.decoding): prefill a prefix, then step token by token, reproduces the
full forward pass's logits for every decodable causal type (registry-driven), grouped-query softmax,
windows shorter than the sequence (sliding window with sinks and global tokens, local blocks) and
per-head mixes; models that cannot decode say why."""
from __future__ import annotations

import pytest
import torch

from nasgraph import attention, decoding
from nasgraph.errors import NasgraphError
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.spec import load_spec

DECODABLE = [n for n in attention.names() if attention.get(n).caps.causal and attention.get(n).caps.decodable]
T, PREFIX = 30, 7
MODEL = """
name: dec
task: {kind: mqar, max_len: 40, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 2, n_val: 1, n_test: 1}
model: {d_model: 16, n_heads: 2, n_layers: 2, norm: {type: rms}, attention: %s}
"""
# configurations whose state is more than a plain cache: windows shorter than T, sinks, GQA, mixed heads
SPECIAL = {
    "softmax-gqa": "{candidates: [{softmax: {n_kv_heads: 1}}]}",
    "softmax-math": "{candidates: [{softmax: {impl: math}}]}",
    "softmax-short_conv3-gqa": "{candidates: [{softmax: {short_conv: 3, n_kv_heads: 1}}]}",
    "sliding_window-w4-sinks2": "{candidates: [{sliding_window: {window: 4, sinks: 2}}]}",
    "sliding_window-w3-global2": "{candidates: [{sliding_window: {window: 3, n_global: 2}}]}",
    "sliding_window-w1": "{candidates: [{sliding_window: {window: 1}}]}",
    "local-w4": "{candidates: [{local: {window: 4}}]}",
    "local-w1": "{candidates: [{local: {window: 1}}]}",
    "aft_local-w4": "{candidates: [{aft_local: {window: 4, pos_dim: 8}}]}",
    "aft_conv-k3": "{candidates: [{aft_conv: {kernel: 3}}]}",
    "aft_conv-k1": "{candidates: [{aft_conv: {kernel: 1}}]}",
    "sparse-b4-c2": "{candidates: [{sparse: {block: 4, n_summary: 2}}]}",
    "bigbird-b4-r2": "{candidates: [{bigbird: {block: 4, n_random: 2, n_global: 1, window_blocks: 1}}]}",
    "bigbird-b3-noglobal": "{candidates: [{bigbird: {block: 3, n_random: 3, n_global: 0, window_blocks: 0}}]}",
    "reformer-c2": "{candidates: [{reformer: {chunk: 2, n_buckets: 4, n_hashes: 2}}]}",
    "dcmha-static": "{candidates: [{dcmha: {static_mix: true, rank: 1}}]}",
    "synthesizer-random": "{candidates: [{synthesizer: {mode: random}}]}",
    "heads-softmax-gla": "{heads: [softmax, gla]}",
    "heads-sliding_window-aft_simple": "{heads: [{sliding_window: {window: 3}}, aft_simple]}",
}


def build(write_spec, attention_yaml: str) -> GraphModule:
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(write_spec(MODEL % attention_yaml)))).eval()
    with torch.no_grad():                       # larger weights than the init, so that errors would show
        for p in model.parameters():
            p.mul_(3.0)
    return model


def assert_decodes_like_forward(model: GraphModule) -> None:
    torch.manual_seed(1)
    tokens = torch.randint(2, 19, (2, T))                                     # (B, T), no padding
    with torch.no_grad():
        full = model(tokens)                                                  # (B, T, V)
        logits, state = decoding.prefill(model, tokens[:, :PREFIX])           # (B, PREFIX, V)
        torch.testing.assert_close(logits, full[:, :PREFIX], rtol=1e-4, atol=1e-4)
        spec = decoding.state_spec(model, 2)
        assert len(state) == len(spec)
        for t in range(PREFIX, T):
            for tensor, described in zip(state, spec):
                assert tuple(tensor.shape) == tuple(t if d == "S" else d for d in described.shape), described.name
                assert tensor.dtype == described.dtype
            logits, state = decoding.step(model, tokens[:, t:t + 1], state, t)  # (B, V)
            torch.testing.assert_close(logits, full[:, t], rtol=1e-4, atol=1e-4, msg=lambda m: f"at {t}: {m}")


@pytest.mark.parametrize("kind", DECODABLE)
def test_prefill_then_step_matches_forward(write_spec, kind):
    assert_decodes_like_forward(build(write_spec, kind))


@pytest.mark.parametrize("case", SPECIAL)
def test_prefill_then_step_matches_forward_past_windows(write_spec, case):
    assert_decodes_like_forward(build(write_spec, SPECIAL[case]))


def test_step_from_init_state_matches_forward(write_spec):
    model = build(write_spec, "{candidates: [{sliding_window: {window: 4, sinks: 1}}]}")
    tokens = torch.randint(2, 19, (1, 12))
    with torch.no_grad():
        full, state = model(tokens), decoding.init_state(model, 1)
        for t in range(12):
            logits, state = decoding.step(model, tokens[:, t:t + 1], state, torch.tensor(t))
            torch.testing.assert_close(logits, full[:, t], rtol=1e-4, atol=1e-4)


def test_state_memory_is_fixed_for_windows_and_grows_for_softmax(write_spec):
    sizes = {}
    for kind in ("softmax", "{candidates: [{sliding_window: {window: 4}}]}", "linear"):
        model = build(write_spec, kind)
        spec = decoding.state_spec(model)
        with torch.no_grad():
            sizes[kind] = [decoding.state_bytes(decoding.prefill(model, torch.randint(2, 19, (1, n)))[1])
                           for n in (8, 16)]
        assert any(s.grows for s in spec) == (kind == "softmax")
    assert sizes["softmax"][1] == 2 * sizes["softmax"][0]                     # 2 x (B, H, S, dh) per layer
    assert sizes["linear"][0] == sizes["linear"][1] == 2 * 2 * (8 * 8 + 8) * 4  # layers x heads x (S + z) fp32
    assert len(set(sizes["{candidates: [{sliding_window: {window: 4}}]}"])) == 1


def test_types_without_a_decoding_form_are_refused_with_the_reason(write_spec):
    model = build(write_spec, "cosformer")
    with pytest.raises(NasgraphError, match="'cosformer' has no decoding form: its cos re-weighting"):
        decoding.prefill(model, torch.randint(2, 19, (1, 4)))


def test_a_search_supernet_is_refused(write_spec):
    model = build(write_spec, "{candidates: [softmax, linear]}")
    with pytest.raises(NasgraphError, match="choice point .*derive"):
        decoding.state_spec(model)


def test_a_classifier_is_refused(write_spec):
    spec = write_spec("""
    name: cls
    task: {kind: tiny, max_len: 12, n_train: 8, n_val: 8, n_test: 8}
    model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}
    """)
    model = GraphModule(compile_spec(load_spec(spec))).eval()
    with pytest.raises(NasgraphError, match="not causal|mixes positions"):
        decoding.init_state(model, 1)


def test_positions_past_max_len_are_refused(write_spec):
    model = build(write_spec, "linear")
    with torch.no_grad():
        _, state = decoding.prefill(model, torch.randint(2, 19, (1, 40)))
        with pytest.raises(NasgraphError, match="past max_len 40"):
            decoding.step(model, torch.randint(2, 19, (1, 1)), state, 40)


@pytest.mark.parametrize("kind", ["softmax", "{candidates: [{sliding_window: {window: 4, sinks: 1}}]}", "gla"])
def test_generation_with_the_decoder_equals_full_forward_generation(write_spec, kind):
    """Greedy and sampled, past max_len (40) where the window slides and the decoder prefills again."""
    from nasgraph.generation import generate

    model = build(write_spec, kind)

    @torch.no_grad()
    def scorer(ids):
        return model(torch.from_numpy(ids)[None])[0].numpy()                 # (T, V)

    decoder, prompt = decoding.EagerDecoder(model), [3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    for options in ({}, {"temperature": 1.0, "top_k": 5, "seed": 2}):
        expected = generate(scorer, prompt, 45, 40, **options)
        assert generate(decoder, prompt, 45, 40, **options) == expected
    assert generate(decoder, [], 3, 40) == generate(scorer, [], 3, 40)


def test_a_state_of_the_wrong_length_is_refused(write_spec):
    model = build(write_spec, "{heads: [softmax, gla]}")
    with torch.no_grad():
        _, state = decoding.prefill(model, torch.randint(2, 19, (1, 4)))
        assert len(state) == len(decoding.state_spec(model)) == 2 * 3       # 2 layers x (k, v, S)
        with pytest.raises(NasgraphError, match="state has 5 tensors, the layers describe 6"):
            decoding.step(model, torch.randint(2, 19, (1, 1)), state[:-1], 4)
