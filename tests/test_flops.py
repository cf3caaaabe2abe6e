"""Each FLOP handle against a number worked out by hand on a tiny module."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasgraph.flops import SOFTMAX_FLOPS, UnsupportedOpError, count_flops, einsum_macs


class Fn(nn.Module):
    """Wrap a function of tensors as a module, for tracing."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)


def flops(fn, *shapes) -> int:
    return count_flops(Fn(fn), tuple(torch.randn(*s) for s in shapes)).total


B, T, D, E, H = 2, 5, 6, 3, 4


# -- products ------------------------------------------------------------------------------------------
def test_linear_is_batch_in_out():
    assert count_flops(nn.Linear(D, E), torch.randn(B, T, D)).total == B * T * D * E
    assert count_flops(nn.Linear(D, E, bias=False), torch.randn(B, D)).total == B * D * E


@pytest.mark.parametrize("fn, shapes, expected", [
    (torch.matmul, [(B, T, D), (D, E)], B * T * D * E),
    (torch.matmul, [(T, D), (B, D, E)], B * T * D * E),          # broadcast batch on the right
    (torch.matmul, [(D,), (D, E)], D * E),                        # vector @ matrix
    (torch.bmm, [(B, T, D), (B, D, E)], B * T * D * E),
    (torch.mm, [(T, D), (D, E)], T * D * E),
    (lambda a, b, c: torch.addmm(c, a, b), [(T, D), (D, E), (E,)], T * D * E),
    (lambda a, b, c: torch.baddbmm(c, a, b), [(B, T, D), (B, D, E), (B, T, E)], B * T * D * E),
])
def test_matrix_products(fn, shapes, expected):
    assert flops(fn, *shapes) == expected


# -- einsum: exact -------------------------------------------------------------------------------------
@pytest.mark.parametrize("eq, shapes, expected", [
    ("i,j->ij", [(7,), (11,)], 7 * 11),                                       # outer product (fvcore halves it)
    ("bhtd,bhsd->bhts", [(B, H, T, E), (B, H, 7, E)], B * H * T * 7 * E),        # batched QK^T
    ("bhts,bhsd->bhtd", [(B, H, T, 7), (B, H, 7, E)], B * H * T * 7 * E),
    ("bhtd,bhte->bhde", [(B, H, T, E), (B, H, T, D)], B * H * T * E * D),        # linear-attention KV
    ("...d,de->...e", [(B, T, D), (D, E)], B * T * D * E),                       # ellipsis
    ("btd,btd->bt", [(B, T, D), (B, T, D)], B * T * D),                         # batched dot
    ("ij,jk", [(T, D), (D, E)], T * D * E),                                     # implicit output
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], 2 * 3 * 4 + 2 * 4 * 5),           # left to right
    ("btd->bd", [(B, T, D)], B * T * D),                                        # reduction
    ("btd->dbt", [(B, T, D)], 0),                                               # permutation is a view
])
def test_einsum_exact(eq, shapes, expected):
    assert einsum_macs(eq, [list(s) for s in shapes]) == expected
    assert flops(lambda *xs: torch.einsum(eq, *xs), *shapes) == expected


# -- attention -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_dense_and_causal_not_halved(causal):
    L = B * H * T * 7                                     # logits: batch * heads * Tq * Tk
    expected = L * E + L * D + L * (1 + SOFTMAX_FLOPS)     # q k^T, p v, scale + softmax
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # noqa: E731
    assert flops(fn, (B, H, T, E), (B, H, 7, E), (B, H, 7, D)) == expected


def test_sdpa_float_mask_adds_one_per_logit_bool_mask_is_free():
    q = torch.randn(B, H, T, E)
    L = B * H * T * T
    base = L * 2 * E + L * (1 + SOFTMAX_FLOPS)
    float_mask = Fn(lambda q, m: F.scaled_dot_product_attention(q, q, q, attn_mask=m))
    assert count_flops(float_mask, (q, torch.zeros(B, 1, 1, T))).total == base + L
    bool_mask = Fn(lambda q, m: F.scaled_dot_product_attention(q, q, q, attn_mask=m > 0))
    assert count_flops(bool_mask, (q, torch.ones(B, 1, 1, T))).total == base


def test_sdpa_equals_the_same_math_written_out():
    def math(q, k, v):
        return ((q @ k.transpose(-2, -1)) * 0.5).softmax(-1) @ v
    shapes = [(B, H, T, E), (B, H, 7, E), (B, H, 7, D)]
    assert flops(F.scaled_dot_product_attention, *shapes) == flops(math, *shapes)


# -- elementwise, reductions, softmax, norms -----------------------------------------------------------
@pytest.mark.parametrize("fn", [
    torch.exp, torch.log, torch.sigmoid, torch.tanh, F.relu, F.elu, F.gelu, torch.neg, torch.rsqrt,
    lambda x: x * 2.0, lambda x: x + 1.0, lambda x: x / 3.0, lambda x: 1.0 - x, lambda x: x.clamp_min(0.1),
    lambda x: x.pow(2),
])
def test_elementwise_is_one_per_output_element(fn):
    assert flops(fn, (B, T, D)) == B * T * D


def test_broadcast_binary_ops_count_output_elements():
    for op in (torch.add, torch.sub, torch.mul, torch.div):
        assert flops(op, (B, 1, D), (T, 1)) == B * T * D


@pytest.mark.parametrize("fn", [
    lambda x: x.sum(-1), lambda x: x.mean(1), lambda x: x.amax(-1), lambda x: x.cumsum(1),
])
def test_reductions_and_cumsum_are_one_per_input_element(fn):
    assert flops(fn, (B, T, D)) == B * T * D


def test_softmax_constant_matches_softmax_written_out():
    n = B * T * D
    assert flops(lambda x: x.softmax(-1), (B, T, D)) == SOFTMAX_FLOPS * n

    def written_out(x):
        e = (x - x.amax(-1, keepdim=True)).exp()
        return e / e.sum(-1, keepdim=True)
    # amax (n) + sub (n) + exp (n) + sum (n) + div (n): the same 5 per element
    assert flops(written_out, (B, T, D)) == SOFTMAX_FLOPS * n


def test_norms():
    x = torch.randn(B, T, D)
    assert count_flops(nn.LayerNorm(D), x).total == 7 * B * T * D                 # 5 + weight + bias
    assert count_flops(nn.LayerNorm(D, elementwise_affine=False), x).total == 5 * B * T * D
    assert count_flops(nn.RMSNorm(D), x).total == 4 * B * T * D                   # 3 + weight
    rms_pieces = lambda x: x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)  # noqa: E731
    assert flops(rms_pieces, (B, T, D)) == 3 * B * T * D + 2 * B * T               # pow, mean, mul + per row


def test_depthwise_and_dense_conv1d():
    x = torch.randn(B, D, T)
    dw = nn.Conv1d(D, D, kernel_size=3, padding=1, groups=D)
    assert count_flops(dw, x).total == B * D * 3 * T                              # one tap per output
    dense = nn.Conv1d(D, E, kernel_size=3)
    assert count_flops(dense, x).total == B * E * D * 3 * (T - 2)


def test_zero_cost_ops_and_integer_math_are_free():
    def shuffle(x):
        idx = torch.arange(x.shape[1]) * 2 // 2                           # integer math: free
        y = x[:, idx].transpose(1, 2).reshape(B, -1)[:, :4]
        return torch.where(y > 0, y, torch.zeros_like(y)).masked_fill(y < -1, 0.0)
    assert flops(shuffle, (B, T, D)) == 0


# -- reporting -----------------------------------------------------------------------------------------
def test_report_by_module_and_by_op():
    net = nn.Sequential(nn.Linear(D, E), nn.GELU(), nn.Linear(E, D))
    report = count_flops(net, torch.randn(B, D))
    assert report.by_module == {"": report.total, "0": B * D * E, "1": B * E, "2": B * E * D}
    assert report.by_op == {"gelu": B * E, "linear": 2 * B * D * E}
    assert report.total == 2 * B * D * E + B * E


def test_unsupported_op_raises_naming_the_op_and_module():
    net = nn.Sequential(nn.Linear(D, D), Fn(lambda x: torch.fft.fft(x).real))
    with pytest.raises(UnsupportedOpError, match=r"aten::fft_fft \(1x, in 1\)"):
        count_flops(net, torch.randn(B, D))
