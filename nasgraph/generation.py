"""Autoregressive generation from any next-token scorer: greedy, temperature and top-k sampling.

The scorer maps token ids (T,) (starting with <cls>) to per-position logits (T, V); generation reads
the last row. It is backend-free (numpy in, numpy out), so the eager model and an exported ONNX model
generate the same way. Each step runs the full forward over the context (no state is carried); when
the context exceeds max_len, <cls> plus the latest max_len - 1 tokens are kept, as in training,
where every window starts with <cls>.

Example:
    >>> ids = generate(scorer, tok.ids("def "), max_new_tokens=40, max_len=256)
    >>> tok.decode(ids)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from nasgraph.errors import NasgraphError
from nasgraph.tasks.tokenize import CLS_ID, PAD_ID

Scorer = Callable[[np.ndarray], np.ndarray]    # ids (T,) int64 -> logits (T, V)
SPECIAL_IDS = (PAD_ID, CLS_ID)                 # never generated


def pick_token(logits: np.ndarray, *, temperature: float = 0.0, top_k: int | None = None,
               rng: np.random.Generator | None = None) -> int:
    """One next token from logits (V,): argmax when temperature is 0, else a sample of
    softmax(logits / temperature) over the top_k largest (all when None). <pad>/<cls> are excluded."""
    z = np.asarray(logits, dtype=np.float64).copy()                       # (V,)
    z[list(SPECIAL_IDS)] = -np.inf
    if temperature <= 0:
        return int(np.argmax(z))
    if top_k is not None and top_k < z.size:
        cutoff = np.partition(z, -top_k)[-top_k]
        z[z < cutoff] = -np.inf
    z = z / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    return int((rng or np.random.default_rng()).choice(z.size, p=p))


def generate(scorer: Scorer, prompt: list[int], max_new_tokens: int, max_len: int, *,
             temperature: float = 0.0, top_k: int | None = None, seed: int = 0) -> list[int]:
    """The `max_new_tokens` ids generated after `prompt` (ids without <cls>)."""
    if max_new_tokens < 0:
        raise NasgraphError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if temperature < 0:
        raise NasgraphError(f"temperature must be >= 0 (0: greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise NasgraphError(f"top_k must be >= 1, got {top_k}")
    if max_len < 2:
        raise NasgraphError(f"max_len {max_len} leaves no room for a prompt token after <cls>")
    rng = np.random.default_rng(seed)
    tokens, out = list(prompt), []
    for _ in range(max_new_tokens):
        context = np.array([CLS_ID] + tokens[-(max_len - 1):] if tokens else [CLS_ID], dtype=np.int64)  # (T,)
        logits = scorer(context)                                           # (T, V)
        token = pick_token(logits[-1], temperature=temperature, top_k=top_k, rng=rng)
        tokens.append(token)
        out.append(token)
    return out
