"""Autoregressive generation from any next-token scorer: greedy, temperature and top-k sampling.

Two kinds of model, both backend-free (numpy in, numpy out), so the eager model and an exported ONNX
model generate the same way:
- a Scorer maps token ids (T,) (starting with <cls>) to per-position logits (T, V); generation reads
  the last row, running the full forward over the context for every token;
- a Decoder carries a state: `prefill(ids)` once for the prompt, then `step(token, state, pos)` per
  token, one position each (see nasgraph.decoding), with the same logits.
When the context exceeds max_len, <cls> plus the latest max_len - 1 tokens are kept, as in training,
where every window starts with <cls> (a Decoder then prefills that window again for each token).

Example:
    >>> ids = generate(scorer, tok.ids("def "), max_new_tokens=40, max_len=256)
    >>> tok.decode(ids)
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Iterator, Protocol, runtime_checkable

import numpy as np

from nasgraph.errors import NasgraphError
from nasgraph.tasks.tokenize import CLS_ID, PAD_ID

Scorer = Callable[[np.ndarray], np.ndarray]    # ids (T,) int64 -> logits (T, V)
SPECIAL_IDS = (PAD_ID, CLS_ID)                 # never generated


@runtime_checkable
class Decoder(Protocol):
    """A stateful next-token model: the state is opaque to generation."""

    def prefill(self, ids: np.ndarray) -> tuple[np.ndarray, Any]:
        """ids (T,) int64, starting with <cls> -> (logits of the last position (V,), state)."""

    def step(self, token: int, state: Any, pos: int) -> tuple[np.ndarray, Any]:
        """token at position pos (the tokens before it: pos) -> (its logits (V,), new state)."""


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


def generate(model: Scorer | Decoder, prompt: list[int], max_new_tokens: int, max_len: int, *,
             temperature: float = 0.0, top_k: int | None = None, seed: int = 0) -> list[int]:
    """The `max_new_tokens` ids generated after `prompt` (ids without <cls>) by a Scorer or a Decoder."""
    return list(stream(model, prompt, max_new_tokens, max_len, temperature=temperature, top_k=top_k, seed=seed))


def stream(model: Scorer | Decoder, prompt: list[int], max_new_tokens: int, max_len: int, *,
           temperature: float = 0.0, top_k: int | None = None, seed: int = 0) -> Iterator[int]:
    """`generate` one id at a time, as each is picked; the options are checked before it returns. Memory
    stays bounded however many tokens are drawn (only the latest max_len ids are kept as context)."""
    if max_new_tokens < 0:
        raise NasgraphError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if not 0 <= temperature < math.inf:                                    # NaN fails too
        raise NasgraphError(f"temperature must be a finite number >= 0 (0: greedy), got {temperature}")
    if seed < 0:
        raise NasgraphError(f"seed must be >= 0, got {seed}")
    if top_k is not None and top_k < 1:
        raise NasgraphError(f"top_k must be >= 1, got {top_k}")
    if max_len < 2:
        raise NasgraphError(f"max_len {max_len} leaves no room for a prompt token after <cls>")
    return _stream(model, list(prompt), max_new_tokens, max_len, temperature, top_k, np.random.default_rng(seed))


def _stream(model, tokens: list[int], max_new_tokens: int, max_len: int, temperature: float, top_k: int | None,
            rng: np.random.Generator) -> Iterator[int]:
    if isinstance(model, Decoder):
        next_logits = _decoded(model, tokens, max_len)
    else:
        next_logits = (model(_window(tokens, max_len))[-1] for _ in itertools.count())   # (V,) per token
    for _ in range(max_new_tokens):
        token = pick_token(next(next_logits), temperature=temperature, top_k=top_k, rng=rng)
        tokens.append(token)
        if len(tokens) > 2 * max_len:                                      # the context never needs more
            del tokens[:-max_len]
        yield token


def _window(tokens: list[int], max_len: int) -> np.ndarray:
    """<cls> plus the latest max_len - 1 tokens: (T,) int64."""
    return np.array([CLS_ID] + tokens[-(max_len - 1):] if tokens else [CLS_ID], dtype=np.int64)


def _decoded(decoder: Decoder, tokens: list[int], max_len: int):
    """Logits (V,) of the next token each time it is asked, after `tokens` (appended to by the caller)."""
    context = _window(tokens, max_len)
    logits, state = decoder.prefill(context)
    pos = len(context)
    while True:
        yield logits
        if pos < max_len:                                                  # room for one more position
            logits, state = decoder.step(tokens[-1], state, pos)
            pos += 1
        else:                                                              # the window slides: prefill it
            context = _window(tokens, max_len)
            logits, state = decoder.prefill(context)
            pos = len(context)
