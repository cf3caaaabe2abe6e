"""ONNX Runtime latency of a whole model (a sub-network of an elastic space): exported once to a
temporary file with the deploy signature (`tokens` (B, T) -> logits), timed on CPU; a percentile of
the timed calls in ms (the 10th by default: on a machine shared with other jobs the median measures
their load as much as the model, while the fast calls are the model's own cost).

The elastic search fits its latency predictor to these (nasgraph.search.latency_model); the search
gets this function handed in by the runner, as it gets the latency cost table.

Example:
    >>> onnx_latency_ms(model, batch=1, seq_len=128, threads=1)
    0.84
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from exporters.bench import token_feeds
from exporters.latency import LatencyResult, ort_latency
from exporters.model_export import LogitsFromTokens
from exporters.onnx_export import batch_seq_axes, export_onnx
from exporters.runtime import make_session


def export_subnet(model: torch.nn.Module, path: Path) -> Path:
    """`model` (a GraphModule) exported with the deploy signature (`tokens` (B, T) -> logits)."""
    example = torch.randint(2, model.ctx.vocab_size, (2, min(model.ctx.max_len, 8)))   # (2, T0) tokens
    return export_onnx(LogitsFromTokens(model.eval()), (example,), path, input_names=["tokens"],
                       output_names=["logits"], dynamic_axes=batch_seq_axes("tokens"), fallback=False)


def time_onnx(path: Path, vocab_size: int, *, batch: int, seq_len: int, threads: int = 1, repeats: int = 100,
              warmup: int = 10, rounds: int = 5) -> np.ndarray:
    """Every timed call (ms) of the exported model at `path`: `rounds` rounds of `repeats` calls pooled."""
    session = make_session(path, "cpu", threads=threads)
    feeds = token_feeds(vocab_size)(batch, seq_len)
    result = LatencyResult.combine([ort_latency(session, feeds, warmup=warmup, repeats=repeats)
                                    for _ in range(rounds)])
    return np.asarray(result.stats.samples_ms, dtype=np.float64)


def onnx_latency_samples(model: torch.nn.Module, *, batch: int = 1, seq_len: int | None = None, threads: int = 1,
                         repeats: int = 100, warmup: int = 10, rounds: int = 5) -> np.ndarray:
    """Every timed call (ms) of `model` (a GraphModule) exported and run by ONNX Runtime at (batch, seq_len)
    (default seq_len: the model's max_len)."""
    T = min(seq_len or model.ctx.max_len, model.ctx.max_len)
    with tempfile.TemporaryDirectory(prefix="nasgraph-subnet-") as tmp:
        path = export_subnet(model, Path(tmp) / "subnet.onnx")
        return time_onnx(path, model.ctx.vocab_size, batch=batch, seq_len=T, threads=threads, repeats=repeats,
                         warmup=warmup, rounds=rounds)


def onnx_latency_ms(model: torch.nn.Module, *, batch: int = 1, seq_len: int | None = None, threads: int = 1,
                    repeats: int = 100, warmup: int = 10, rounds: int = 5, percentile: float = 10) -> float:
    """ONNX Runtime latency (ms, `percentile` of the calls) of `model` (a GraphModule) at (batch, seq_len),
    `rounds` timing rounds pooled (default seq_len: the model's max_len)."""
    samples = onnx_latency_samples(model, batch=batch, seq_len=seq_len, threads=threads, repeats=repeats,
                                   warmup=warmup, rounds=rounds)
    return float(np.percentile(samples, percentile))
