"""Export a causal language model for generation: a prefill graph and a step graph with explicit state.

- `<stem>.prefill.onnx`: tokens (B, T) int64 -> logits (B, T, V) and `present.*` state tensors;
- `<stem>.step.onnx`: tokens (B, 1) int64, position () int64 (the index of that token) and the
  `past.*` state tensors -> logits (B, V) and the `present.*` state after the token.

The state is whatever each layer's decoding form keeps (nasgraph.decoding): a KV cache that grows by
one position per token (softmax; n_kv_heads heads), a fixed window (sliding_window, local), a
recurrent matrix (linear family, retention, gla, deltanet), running sums (aft_simple). Its layout
goes into both graphs' metadata (`nasgraph.decode`, JSON; docs/decode_format.md), so any ONNX
Runtime client can build the initial state and drive generation (exporters.decode_runtime does).

Both graphs land only when ONNX Runtime decoding reproduces the eager full forward pass: prefill on
the first half of each check batch then one step per remaining token, steps from the initial
(empty) state, and prefill at prompt lengths around and past the traced one (`probe_lengths`: a
size the trace fixed in the graph fails there, not in a user's generation), all within atol of the
full forward's logits.

Example:
    >>> paths, report = export_decode(model, "out/model.onnx", [tokens], max_len=256)
    >>> report.summary()
    'decode parity ok (atol 0.0001): prefill 4x6 1.2e-07; steps 6..11 2.4e-07; from empty state 0..3 1.8e-07;
     prefill lengths 1,7,129,256 (per unit of the largest logit) 3.1e-07'
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from exporters._files import check_target, move_all_into_place, staging_dir
from exporters.decode_runtime import META_KEY, PREFILL_SUFFIX, STEP_SUFFIX, OrtDecoder
from exporters.decode_state import StateLayout
from exporters.errors import ExportError, ParityError
from exporters.guards import position_guard, token_guards
from exporters.onnx_export import write_onnx
from exporters.parity import stamp

TOKENS, POSITION, LOGITS = "tokens", "position", "logits"
FORMAT = 1
DECODE_MODES = ("auto", "always", "never")
TRACE_LEN = 1024   # tokens traced (at most max_len): several chunks/blocks of every type's default size


class PrefillGraph(nn.Module):
    """tokens (B, T) -> (logits (B, T, V), *state tensors) of nasgraph.decoding.prefill."""

    def __init__(self, model: nn.Module, layout: StateLayout):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, tokens: torch.Tensor):
        from nasgraph import decoding

        logits, state = decoding.prefill(self.model, tokens)               # (B, T, V)
        return (logits, *self.layout.flatten(state))


class StepGraph(nn.Module):
    """(token (B, 1), position (), *state) -> (logits (B, V), *new state) of nasgraph.decoding.step."""

    def __init__(self, model: nn.Module, layout: StateLayout):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, tokens: torch.Tensor, position: torch.Tensor, *state: torch.Tensor):
        from nasgraph import decoding

        logits, new = decoding.step(self.model, tokens, self.layout.unflatten(state), position)  # (B, V)
        return (logits, *self.layout.flatten(new))


def decode_names(path: str | Path) -> tuple[Path, Path]:
    """The decoding graphs beside `path`: `model.onnx` -> (model.prefill.onnx, model.step.onnx)."""
    path = Path(path)
    stem = path.name[:-5] if path.name.endswith(".onnx") else path.name
    return path.with_name(stem + PREFILL_SUFFIX), path.with_name(stem + STEP_SUFFIX)


def decode_layout_json(layout: StateLayout, max_len: int, prefill: str, step: str) -> str:
    """The `nasgraph.decode` metadata value (docs/decode_format.md)."""
    return json.dumps({
        "format": FORMAT, "prefill": prefill, "step": step, "token_input": TOKENS, "position_input": POSITION,
        "logits_output": LOGITS, "max_len": max_len,
        "dims": {"batch": "sequences decoded together", "cache": "tokens already in the state (0 before the first)"},
        "state": [t.entry() for t in layout.tensors]})


@dataclass
class DecodeParity:
    """Largest |eager full forward - ONNX Runtime decoding| per phase; ok when all are within atol."""

    atol: float
    phases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max((d for _, d in self.phases), default=float("inf"))

    @property
    def ok(self) -> bool:
        return bool(self.phases) and all(d <= self.atol for _, d in self.phases)

    def summary(self) -> str:
        verdict = "ok" if self.ok else "MISMATCH"
        return f"decode parity {verdict} (atol {self.atol:g}): " + "; ".join(f"{p} {d:.3g}" for p, d in self.phases)


def _diff(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("inf")
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return float("inf") if np.isnan(d).any() else float(d.max(initial=0.0))


def check_decode_parity(model: nn.Module, decoder: OrtDecoder, checks: Sequence[torch.Tensor],
                        atol: float = 1e-4, from_empty: int = 4) -> DecodeParity:
    """For each check batch (B, T) without padding: ORT prefill of the first T // 2 tokens, then one
    ORT step per remaining token, against the eager full forward's logits (B, T, V); and steps from
    the metadata's initial state over the first `from_empty` tokens of the first batch."""
    report = DecodeParity(atol)
    model.eval()
    for i, tokens in enumerate(checks):
        B, T = tokens.shape
        with torch.no_grad():
            full = model(tokens, padded=False).numpy()                     # (B, T, V)
        ids, P = tokens.numpy(), max(1, T // 2)
        logits, state = decoder.prefill(ids[:, :P])                        # (B, P, V)
        report.phases.append((f"prefill {B}x{P}", _diff(logits, full[:, :P])))
        worst = 0.0
        for t in range(P, T):
            step_logits, state = decoder.step(ids[:, t:t + 1], state, t)   # (B, V)
            worst = max(worst, _diff(step_logits, full[:, t]))
        if T > P:
            report.phases.append((f"steps {P}..{T - 1}", worst))
        if i == 0 and from_empty:
            n, state, worst = min(from_empty, T), decoder.init_state(B), 0.0
            for t in range(n):
                step_logits, state = decoder.step(ids[:, t:t + 1], state, t)
                worst = max(worst, _diff(step_logits, full[:, t]))
            report.phases.append((f"from empty state 0..{n - 1}", worst))
    return report


def probe_lengths(traced: int, max_len: int) -> list[int]:
    """Prompt lengths that a graph traced at `traced` tokens must also run: one token, a few (inside one
    chunk or block), about half the trace and over twice it (a chunk count of 1 in the trace is then
    at least 2), odd so that none is a multiple of a chunk; at most max_len."""
    return sorted({min(n, max_len) for n in (1, 7, traced // 2 + 1, 2 * traced + 13)})


def check_prompt_lengths(model: nn.Module, decoder: OrtDecoder, tokens: torch.Tensor, lengths: Sequence[int],
                         traced: int, report: DecodeParity) -> None:
    """ORT prefill of the first T of `tokens` (1, >= max(lengths)) for each T in `lengths`, against the
    eager full forward of a graph traced at `traced` tokens (the difference relative to the largest
    |logit| when above 1: fp32 rounding over thousands of positions grows with the logits' scale).
    A size that the trace fixed (torch.export specialises sizes it sees as 0 or 1, and Python
    branches on a length follow the traced one) fails here, not in a user's generation."""
    worst = 0.0
    for T in lengths:
        ids = tokens[:, :T]                                                # (1, T)
        with torch.no_grad():
            full = model(ids, padded=False).numpy()                        # (1, T, V)
        try:
            logits, _ = decoder.prefill(ids.numpy())                       # (1, T, V)
        except Exception as err:  # noqa: BLE001 - onnxruntime's own error types
            first = (str(err).strip().splitlines() or [""])[0][:300]
            raise ParityError(f"the prefill graph fails on a {T}-token prompt ({type(err).__name__}: {first}); "
                              f"a size of the {traced}-token trace is fixed in the graph") from None
        worst = max(worst, _diff(logits, full) / max(1.0, float(np.abs(full).max())))
    report.phases.append((f"prefill lengths {','.join(map(str, lengths))} (per unit of the largest logit)", worst))


def stage_decode(model: nn.Module, stage: Path, names: tuple[str, str], example: torch.Tensor,
                 checks: Sequence[torch.Tensor], *, max_len: int, metadata: dict[str, str] | None = None,
                 atol: float = 1e-4, opset: int = 18, contrib_ops: bool = True) -> DecodeParity:
    """Export the prefill and step graphs into `stage` (file names `names`) and check decoding parity
    there; ParityError on a mismatch. The rows of `example` (no padding) trace both graphs. contrib_ops:
    the recurrences through com.microsoft.LinearAttention where onnxruntime has it (past/present state)."""
    from exporters.linear_attention import linear_attention_translations
    from nasgraph import decoding

    model.eval()
    layout = StateLayout.of(model)
    prefill_path, step_path = stage / names[0], stage / names[1]
    meta = {**(metadata or {}), META_KEY: decode_layout_json(layout, max_len, *names)}
    example = trace_tokens(example, max_len)                               # (2, T)
    with torch.no_grad():
        _, state = decoding.prefill(model, example[:, :-1])                # the state before the last token
    flat = layout.flatten(state)
    translations = linear_attention_translations() if contrib_ops else None
    write_onnx(PrefillGraph(model, layout), (example,), prefill_path, input_names=[TOKENS],
               output_names=[LOGITS, *layout.outputs], dynamic_axes={TOKENS: {0: "batch", 1: "seq"}},
               axis_max={"seq": max_len}, opset=opset, graph_pass=token_guards(TOKENS, max_len=max_len),
               translations=translations,
               metadata={**meta, "nasgraph.decode_role": "prefill"})
    position = torch.tensor(example.shape[1] - 1, dtype=torch.int64)
    write_onnx(StepGraph(model, layout), (example[:, -1:], position, *flat), step_path,
               input_names=[TOKENS, POSITION, *layout.inputs], output_names=[LOGITS, *layout.outputs],
               dynamic_axes={TOKENS: {0: "batch"}, **layout.dynamic_axes()}, opset=opset,
               graph_pass=position_guard(POSITION, max_len), translations=translations,
               metadata={**meta, "nasgraph.decode_role": "step"})
    try:
        decoder = OrtDecoder(step_path, threads=1)
        report = check_decode_parity(model, decoder, checks, atol)
        lengths = probe_lengths(example.shape[1], max_len)
        probe = trace_tokens(example[:1], max_len, 1, max(lengths))           # (1, max(lengths))
        check_prompt_lengths(model, decoder, probe, lengths, example.shape[1], report)
    except ExportError:
        raise
    except Exception as err:  # noqa: BLE001 - onnxruntime's own error types: the graphs do not run
        first = (str(err).strip().splitlines() or [""])[0][:300]
        raise ParityError(f"{names[1]}: ONNX Runtime fails while decoding ({type(err).__name__}: {first})") from None
    if not report.ok:
        raise ParityError(f"{names[1]}: {report.summary()}")
    for path in (prefill_path, step_path):
        stamp(path, {"nasgraph.decode_parity": report.summary()})
    return report


def trace_tokens(example: torch.Tensor, max_len: int, batch: int = 2, longest: int | None = None) -> torch.Tensor:
    """`batch` rows to trace with (not 1: torch.export would fix the batch axis), as long as max_len
    allows up to `longest` (default TRACE_LEN; the example's tokens repeated): torch.export
    specialises a size seen as 1, so a trace on a prompt shorter than one chunk of a recurrence (or one block of a windowed type)
    would fix the graph to one chunk and fail on longer prompts."""
    rows = example[:batch] if example.shape[0] >= batch else example.repeat(batch, 1)[:batch]   # (2, T)
    T = max(min(max_len, TRACE_LEN if longest is None else longest), 3)
    return rows.repeat(1, -(-T // rows.shape[1]))[:, :T]                  # (2, T)


def export_decode(model: nn.Module, path: str | Path, checks: Sequence[torch.Tensor], *, max_len: int,
                  example: torch.Tensor | None = None, metadata: dict[str, str] | None = None,
                  atol: float = 1e-4, opset: int = 18, overwrite: bool = False, contrib_ops: bool = True
                  ) -> tuple[tuple[Path, Path], DecodeParity]:
    """Export `model` (a causal GraphModule whose attention types all decode) as `<stem>.prefill.onnx`
    and `<stem>.step.onnx` beside `path`, checked on `checks` (token batches (B, T), no padding);
    both land together or not at all; contrib_ops: see `stage_decode`. Returns ((prefill, step), parity report)."""
    prefill_dst, step_dst = (check_target(p, overwrite) for p in decode_names(path))
    example = checks[0] if example is None else example
    with staging_dir(step_dst) as stage:
        report = stage_decode(model, stage, (prefill_dst.name, step_dst.name), example, checks,
                              max_len=max_len, metadata=metadata, atol=atol, opset=opset, contrib_ops=contrib_ops)
        move_all_into_place([(stage / prefill_dst.name, prefill_dst), (stage / step_dst.name, step_dst)], overwrite)
    return (prefill_dst, step_dst), report


def decode_skip_reason(model: nn.Module, output: str, mode: str = "auto") -> str | None:
    """None when the prefill/step graphs are to be exported, else why not ("" when nothing is worth
    saying: `mode` "never", or a classifier under "auto"). mode "always" raises ExportError instead."""
    if mode not in DECODE_MODES:
        raise ExportError(f"unknown decode mode '{mode}'; valid: {', '.join(DECODE_MODES)}")
    if mode == "never":
        return ""
    if output != "token":
        if mode == "always":
            raise ExportError("decoding graphs need a causal language model (per-position logits: an lm or mqar "
                              "task); this model gives one label per sequence")
        return ""
    try:
        StateLayout.of(model)
    except ExportError as err:
        if mode == "always":
            raise
        return str(err)
    return None
