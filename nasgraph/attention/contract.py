"""The contract every attention type keeps, as checks that the test suite and `nasgraph check-attention`
both run against a registered type (built-in or plug-in).

A check is `run(name, causal)`: it returns when the type keeps the contract, raises `Skipped` when
a capability flag says the check does not apply (never by name), and raises anything else on failure.
`forms` says which forms it runs on: "each" (full and causal, those the type has), "full" (once per
type: the non-causal form, or the causal one of a causal-only type) or "causal" (the causal form
only). The ONNX export check lives in exporters (a higher layer).
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch

from nasgraph import attention
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.errors import ConfigError, SequenceTooLongError

D, H, B = 32, 4, 2
LONGEST = 64  # the largest checked T, and max_len of bounded types


class Skipped(Exception):
    """The check does not apply to this type; the message names the capability flag."""


@dataclass(frozen=True)
class Check:
    name: str
    run: Callable[[str, bool], None]
    doc: str
    forms: Literal["each", "full", "causal"] = "each"


@dataclass(frozen=True)
class Result:
    check: str
    form: str          # "full" | "causal"
    status: str        # "pass" | "fail" | "skip"
    detail: str = ""


def padding_mask(T: int, B: int = B) -> torch.Tensor:
    """Row 0 right-padded, row 1 left-padded with a hole in the middle; (B, T) bool, True = real."""
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[0, T - T // 3:] = False
    mask[1, : T // 4] = False
    mask[1, T // 2] = False
    return mask


def build(name: str, causal: bool | None = None, max_len: int = LONGEST, **kwargs) -> Attention:
    """Type `name` at the contract's size (d_model D, H heads), seeded; bounded types get max_len.

    causal=None: the non-causal form, or the causal one for causal-only types (caps.noncausal=False).
    """
    torch.manual_seed(0)
    causal = not attention.get(name).caps.noncausal if causal is None else causal
    bounded = attention.get(name).caps.bounded
    return attention.build(name, D, H, causal=causal, max_len=max_len if bounded else None, **kwargs)


def _needs_padding_support(module: Attention) -> None:
    if not module.caps.padding_mask:
        raise Skipped(f"'{module.name}' does not take a padding mask (caps.padding_mask=False)")


def _close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5, msg=lambda m: f"{what}: {m}")


# -- the checks -------------------------------------------------------------------------------------
def declared(name: str, causal: bool) -> None:
    cls = attention.get(name)
    assert issubclass(cls.Config, AttentionConfig), f"Config {cls.Config!r} is not an AttentionConfig"
    assert isinstance(cls.caps, Capabilities), f"caps {cls.caps!r} is not a Capabilities"


def finite_values_and_gradients(name: str, causal: bool) -> None:
    for T in (1, 7, LONGEST):
        module = build(name, causal).train()
        x = torch.randn(B, T, D, requires_grad=True)                 # (B, T, D)
        mask = padding_mask(T) if module.caps.padding_mask and T > 1 else None
        out = module(x, mask)                                        # (B, T, D)
        assert out.shape == (B, T, D), f"T={T}: output shape {tuple(out.shape)}, expected {(B, T, D)}"
        assert torch.isfinite(out).all(), f"T={T}: non-finite output"
        out.square().mean().backward()
        assert torch.isfinite(x.grad).all(), f"T={T}: non-finite input gradient"
        for pname, param in module.named_parameters():
            assert param.grad is None or torch.isfinite(param.grad).all(), f"T={T}: non-finite gradient in {pname}"


def custom_head_dim(name: str, causal: bool) -> None:
    """Heterogeneous layers build a type with their own head width, and no out_proj."""
    module = build(name, causal, head_dim=6, out_proj=False).eval()
    x = torch.randn(B, 9, D)
    shape = tuple(module.heads(x, None).shape)
    assert shape == (B, 9, H, 6), f"heads() gave {shape}, expected {(B, 9, H, 6)}"
    try:
        module(x)
    except RuntimeError as err:
        assert "out_proj=False" in str(err), f"forward() without out_proj raised an unclear error: {err}"
    else:
        raise AssertionError("forward() ran although the type was built with out_proj=False")


def no_look_ahead(name: str, causal: bool) -> None:
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
            _close(out[:, : t + 1][past], base[:, : t + 1][past], f"output up to {t} moved when later inputs changed")
            assert not torch.allclose(out[:, t + 1:], base[:, t + 1:]), "perturbation had no effect at all"


def padding_is_ignored(name: str, causal: bool) -> None:
    for T in (9, LONGEST):
        module = build(name, causal).eval()
        _needs_padding_support(module)
        mask = padding_mask(T)
        x = torch.randn(B, T, D)
        base = module(x, mask)
        noisy = x.clone()
        noisy[~mask] = 10 * torch.randn(int((~mask).sum()), D)
        _close(module(noisy, mask)[mask], base[mask], f"T={T}: padded tokens changed real outputs")
        real = x.clone()
        real[mask] += torch.randn(int(mask.sum()), D)
        assert not torch.allclose(module(real, mask)[mask], base[mask]), f"T={T}: real tokens had no effect"


def fully_padded_row_finite(name: str, causal: bool) -> None:
    module = build(name, causal).eval()
    _needs_padding_support(module)
    mask = padding_mask(12)
    mask[1] = False
    assert torch.isfinite(module(torch.randn(B, 12, D), mask)).all(), "a fully padded row gave non-finite values"


def deterministic_eval(name: str, causal: bool) -> None:
    module = build(name).eval()
    if not module.caps.exact:
        raise Skipped(f"'{name}' is not deterministic at eval (caps.exact=False)")
    x = torch.randn(B, 11, D)
    assert torch.equal(module(x), module(x)), "two eval calls on the same input differ"


def unknown_option_rejected(name: str, causal: bool) -> None:
    try:
        build(name, no_such_option=1)
    except ConfigError as err:
        message = str(err)
    else:
        raise AssertionError("an unknown option was accepted")
    assert "no_such_option" in message and name in message, f"message names neither key nor type: {message}"
    valid = list(attention.get(name).Config.model_fields) or ["(none)"]
    missing = [option for option in valid if option not in message]
    assert not missing, f"message does not list valid options {missing}: {message}"


def bounded_length_enforced(name: str, causal: bool) -> None:
    if not attention.get(name).caps.bounded:
        raise Skipped(f"'{name}' is not bounded by a max_len (caps.bounded=False)")
    try:
        attention.build(name, D, H, causal=not attention.get(name).caps.noncausal)
    except ConfigError as err:
        assert "max_len" in str(err), f"building without max_len: unclear error: {err}"
    else:
        raise AssertionError("a bounded type built without max_len")
    module = build(name, max_len=16).eval()
    assert module(torch.randn(1, 16, D)).shape == (1, 16, D)
    try:
        module(torch.randn(1, 17, D))
    except SequenceTooLongError as err:
        assert "17" in str(err) and "16" in str(err), f"too-long input: unclear error: {err}"
    else:
        raise AssertionError("an input longer than max_len ran")


def causal_refused_without_form(name: str, causal: bool) -> None:
    if attention.get(name).caps.causal:
        raise Skipped(f"'{name}' has a causal form (caps.causal=True)")
    try:
        build(name, causal=True)
    except ConfigError as err:
        assert "no causal form" in str(err), f"unclear error: {err}"
    else:
        raise AssertionError("a causal form was built although caps.causal=False")


def noncausal_refused_when_causal_only(name: str, causal: bool) -> None:
    if attention.get(name).caps.noncausal:
        raise Skipped(f"'{name}' has a non-causal form (caps.noncausal=True)")
    try:
        build(name, causal=False)
    except ConfigError as err:
        assert "causal-only" in str(err) and "softmax" in str(err), f"unclear error: {err}"
    else:
        raise AssertionError("a non-causal form was built although caps.noncausal=False")


def decoding_matches_forward(name: str, causal: bool) -> None:
    """step() token by token from init_state(), and prefill() of a prefix then step(), give forward's
    outputs (float64, to rounding); the state tensors have the shapes state_shapes() describes."""
    module = build(name, causal=True).eval()
    if not module.caps.decodable:
        raise Skipped(f"'{name}' has no decoding form (caps.decodable=False): {module.caps.decode_note}")
    module.double()
    T, prefix = 13, 5
    x = torch.randn(B, T, D, dtype=torch.float64)                   # (B, T, D)
    expected = module(x)                                            # (B, T, D)
    state = module.init_state(B, dtype=torch.float64)
    steps = []
    for t in range(T):
        y, state = module.step(x[:, t], state, t)                    # (B, D)
        steps.append(y)
    _close_exact(torch.stack(steps, 1), expected, "step() from init_state() differs from forward()")
    _check_state_shapes(module, state, T)
    y, state = module.prefill(x[:, :prefix])                         # (B, prefix, D)
    _close_exact(y, expected[:, :prefix], "prefill() differs from forward()")
    _check_state_shapes(module, state, prefix)
    for t in range(prefix, T):
        y, state = module.step(x[:, t:t + 1], state, torch.tensor(t))  # (B, 1, D), a tensor position
        _close_exact(y[:, 0], expected[:, t], f"step() at {t} after prefill() differs from forward()")


def _close_exact(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-10, msg=lambda m: f"{what}: {m}")


def _check_state_shapes(module: Attention, state: tuple, length: int) -> None:
    described = [tuple(length if d == "S" else d for d in shape) for _, shape in module.state_shapes(B)]
    actual = [tuple(t.shape) for t in state]
    assert actual == described, f"state shapes {actual} differ from state_shapes() {described}"


CHECKS: list[Check] = [
    Check("declared", declared, "typed Config (AttentionConfig) and capability flags", "full"),
    Check("finite", finite_values_and_gradients, "shapes, finite values and gradients at T=1, 7, 64"),
    Check("head_dim", custom_head_dim, "heads() honours a custom head_dim without out_proj"),
    Check("causality", no_look_ahead, "outputs never depend on later inputs", "causal"),
    Check("padding", padding_is_ignored, "padded tokens never reach real positions"),
    Check("fully_padded", fully_padded_row_finite, "a fully padded sequence stays finite"),
    Check("deterministic", deterministic_eval, "eval is deterministic", "full"),
    Check("unknown_option", unknown_option_rejected, "unknown options rejected, valid ones listed", "full"),
    Check("bounded", bounded_length_enforced, "bounded types need max_len and refuse longer input", "full"),
    Check("no_causal_form", causal_refused_without_form, "a causal request is refused without a causal form", "full"),
    Check("causal_only", noncausal_refused_when_causal_only, "a causal-only type refuses the non-causal form",
          "full"),
    Check("decoding", decoding_matches_forward, "decodable types: step() and prefill() + step() == forward()",
          "causal"),
]


def forms(name: str, check: Check) -> list[bool]:
    """The `causal` values `check` runs with for type `name`."""
    caps = attention.get(name).caps
    each = [False] * caps.noncausal + [True] * caps.causal           # the forms the type has
    return {"full": each[:1], "causal": [True] if caps.causal else [], "each": each}[check.forms]


def run_checks(name: str, checks: Sequence[Check] = CHECKS, on_result=None) -> list[Result]:
    """Every check on every applicable form of `name`; `on_result(result)` is called as each finishes."""
    attention.get(name)  # unknown name: ConfigError with the valid ones
    results = []
    for check in checks:
        for causal in forms(name, check):
            form = "causal" if causal else "full"
            try:
                check.run(name, causal)
                result = Result(check.name, form, "pass")
            except Skipped as why:
                result = Result(check.name, form, "skip", str(why))
            except Exception as err:  # a failing type may fail in any way: report it, keep checking
                result = Result(check.name, form, "fail", describe_failure(err))
            results.append(result)
            if on_result:
                on_result(result)
    return results


def describe_failure(err: BaseException, width: int = 220) -> str:
    """One line: the error's first lines and the innermost frame outside installed packages."""
    lines = [l.strip() for l in f"{type(err).__name__}: {err}".splitlines() if l.strip()]
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "site-packages" not in f.filename]
    where = f" ({frames[-1].filename.rsplit('/', 1)[-1]}:{frames[-1].lineno})" if frames else ""
    text = "; ".join(lines[:3])
    return (text if len(text) <= width else text[:width - 3] + "...") + where
