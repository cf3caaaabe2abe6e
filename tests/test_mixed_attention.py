"""Mixed (supernet) and heterogeneous (derived per-head) attention layers against their parts."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nasgraph.ops.attention import HeteroAttention
from nasgraph.ops.mixed_attention import MixedAttention

CANDS = [("softmax", {}), ("linear", {}), ("local", {"window": 4})]


def test_one_hot_weights_select_one_candidate():
    torch.manual_seed(0)
    for c in range(3):
        layer = MixedAttention(CANDS, 16, 4, "head", False, 32,
                               mixer=lambda a, n, c=c: F.one_hot(torch.full((4,), c), 3).float())
        x = torch.randn(2, 9, 16)
        expected = layer.out_proj(layer.candidates[c].heads(x).flatten(2))
        torch.testing.assert_close(layer(x), expected)


def test_per_head_weights_mix_each_head_separately():
    torch.manual_seed(0)
    w = torch.softmax(torch.randn(4, 3), -1)
    layer = MixedAttention(CANDS, 16, 4, "head", False, 32, mixer=lambda a, n: w)
    x = torch.randn(2, 9, 16)
    heads = sum(layer.candidates[c].heads(x) * w[:, c][None, None, :, None] for c in range(3))  # (B, T, H, dh)
    torch.testing.assert_close(layer(x), layer.out_proj(heads.flatten(2)))


def test_zero_weight_candidates_are_not_run():
    calls = []
    layer = MixedAttention(CANDS, 16, 4, "layer", False, 32, mixer=lambda a, n: torch.tensor([[0.0, 1.0, 0.0]]))
    for i, cand in enumerate(layer.candidates):
        original = cand.heads
        cand.heads = lambda x, mask=None, i=i, f=original: (calls.append(i), f(x, mask))[1]
    layer(torch.randn(1, 5, 16))
    assert calls == [1]


def test_hetero_heads_keep_their_order():
    torch.manual_seed(0)
    layer = HeteroAttention([("softmax", {}), ("linear", {}), ("softmax", {}), ("linear", {})], 16, False, 32)
    x = torch.randn(2, 7, 16)
    soft, lin = layer.groups[0].heads(x), layer.groups[1].heads(x)                 # (B, T, 2, dh) each
    expected = torch.stack([soft[:, :, 0], lin[:, :, 0], soft[:, :, 1], lin[:, :, 1]], dim=2)
    torch.testing.assert_close(layer(x), layer.out_proj(expected.flatten(2)))
    assert layer.labels == ["softmax", "linear", "softmax", "linear"]
