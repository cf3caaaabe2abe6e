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


def onnx_latency_ms(model: torch.nn.Module, *, batch: int = 1, seq_len: int | None = None, threads: int = 1,
                    repeats: int = 100, warmup: int = 10, rounds: int = 5, percentile: float = 10) -> float:
    """ONNX Runtime latency (ms, `percentile` of the calls) of `model` (a GraphModule) at (batch, seq_len),
    `rounds` timing rounds pooled (default seq_len: the model's max_len)."""
    ctx = model.ctx
    T = min(seq_len or ctx.max_len, ctx.max_len)
    example = torch.randint(2, ctx.vocab_size, (2, min(T, 8)))                    # (2, T0) tokens
    with tempfile.TemporaryDirectory(prefix="nasgraph-subnet-") as tmp:
        path = export_onnx(LogitsFromTokens(model.eval()), (example,), Path(tmp) / "subnet.onnx",
                           input_names=["tokens"], output_names=["logits"], dynamic_axes=batch_seq_axes("tokens"),
                           fallback=False)
        session = make_session(path, "cpu", threads=threads)
        feeds = token_feeds(ctx.vocab_size)(batch, T)
        result = LatencyResult.combine([ort_latency(session, feeds, warmup=warmup, repeats=repeats)
                                        for _ in range(rounds)])
    return float(np.percentile(result.stats.samples_ms, percentile))
