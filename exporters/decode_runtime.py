"""Drive exported prefill/step graphs with ONNX Runtime: prefill a prompt, step token by token, generate.

The two graphs (`exporters.decode_export`) carry their state layout in the metadata key
`nasgraph.decode` (docs/decode_format.md); this driver reads it and nothing else, so it works for
any mix of attention types. A state is a dict {graph input name: array}.

Example:
    >>> dec = OrtDecoder("runs/model.onnx", threads=2)          # or the folder, or model.step.onnx
    >>> logits, state = dec.prefill(np.array([[1, 70, 101]]))    # (B, T, V), state after 3 tokens
    >>> logits, state = dec.step(np.array([[32]]), state, 3)     # (B, V), state after 4 tokens
    >>> dec.generate(dec.tokenizer.ids("def "), 40)              # greedy continuation ids
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from exporters.errors import ExportError
from exporters.runtime import make_session, read_metadata, run

META_KEY = "nasgraph.decode"
PREFILL_SUFFIX, STEP_SUFFIX = ".prefill.onnx", ".step.onnx"


def decode_paths(path: str | Path) -> tuple[Path, Path]:
    """(prefill, step) graphs of `path`: a folder holding one `*.prefill.onnx` and its `*.step.onnx`,
    or any graph of an export (`model.onnx`, `model.prefill.onnx`, `model.step.onnx`)."""
    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("*" + PREFILL_SUFFIX))
        if len(found) != 1:
            raise ExportError(f"{path}: expected one *{PREFILL_SUFFIX} graph, found "
                              f"{', '.join(p.name for p in found) or 'none'}")
        stem = found[0].name[:-len(PREFILL_SUFFIX)]
    else:
        name = path.name
        stem = next((name[:-len(s)] for s in (PREFILL_SUFFIX, STEP_SUFFIX, ".unpadded.onnx", ".onnx")
                     if name.endswith(s)), name)
        path = path.parent
    prefill, step = path / (stem + PREFILL_SUFFIX), path / (stem + STEP_SUFFIX)
    missing = [p.name for p in (prefill, step) if not p.is_file()]
    if missing:
        raise ExportError(f"no decoding graphs beside {path / stem}: {', '.join(missing)} missing (export a causal "
                          f"language model with `nasgraph export`, which writes them)")
    return prefill, step


def has_decode_graphs(path: str | Path) -> bool:
    """Whether `decode_paths(path)` finds a prefill/step pair."""
    try:
        decode_paths(path)
    except ExportError:
        return False
    return True


def init_array(entry: dict, batch: int) -> np.ndarray:
    """A state tensor before the first token, from its metadata entry: shape with `batch` for
    "batch" and 0 for the growing "cache" axis, filled with entry["fill"] (0 unless stated)."""
    shape = [batch if d == "batch" else 0 if isinstance(d, str) else int(d) for d in entry["shape"]]
    return np.full(shape, float(entry.get("fill", 0.0)), dtype=np.dtype(entry["dtype"]))


class OrtDecoder:
    """Stateful generation through an exported prefill graph and step graph on a verified provider."""

    def __init__(self, path: str | Path, threads: int | None = None, provider: str = "cpu"):
        self.prefill_path, self.step_path = decode_paths(path)
        meta = read_metadata(self.step_path)
        if META_KEY not in meta:
            raise ExportError(f"{self.step_path} has no '{META_KEY}' metadata: not a nasgraph step graph")
        self.meta, self.layout = meta, json.loads(meta[META_KEY])
        self.max_len = int(self.layout["max_len"])
        self.state_entries: list[dict] = self.layout["state"]
        self._prefill = make_session(self.prefill_path, provider, threads=threads)
        self._step = make_session(self.step_path, provider, threads=threads)

    @property
    def tokenizer(self):
        """The export's tokenizer (nasgraph.tasks.tokenize.Tokenizer)."""
        from nasgraph.tasks.tokenize import Tokenizer

        if "nasgraph.tokenizer" not in self.meta:
            raise ExportError(f"{self.step_path} carries no tokenizer metadata (exported without a task)")
        return Tokenizer.from_dict(json.loads(self.meta["nasgraph.tokenizer"]))

    def init_state(self, batch: int) -> dict[str, np.ndarray]:
        """The state before any token (zeros, empty caches)."""
        return {e["input"]: init_array(e, batch) for e in self.state_entries}

    def prefill(self, tokens: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """tokens (B, T) int64, no padding, T <= max_len -> logits (B, T, V) and the state after them."""
        tokens = np.asarray(tokens, dtype=np.int64)
        if tokens.ndim != 2 or not 1 <= tokens.shape[1] <= self.max_len:
            raise ExportError(f"prefill takes tokens (B, T) with 1 <= T <= max_len {self.max_len}, "
                              f"got shape {tokens.shape}")
        out = run(self._prefill, {self.layout["token_input"]: tokens})
        return out[0], self._state_from(out[1:])

    def step(self, token: np.ndarray, state: dict[str, np.ndarray], pos: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """token (B, 1) int64 at position `pos` (the count of tokens already in `state`) ->
        logits (B, V) and the state including it."""
        if not 0 <= pos < self.max_len:
            raise ExportError(f"position {pos} outside 0..{self.max_len - 1} (max_len {self.max_len}); "
                              f"re-prefill a shorter context")
        feeds = {self.layout["token_input"]: np.asarray(token, dtype=np.int64).reshape(-1, 1),
                 self.layout["position_input"]: np.array(pos, dtype=np.int64), **state}
        out = run(self._step, feeds)
        return out[0], self._state_from(out[1:])

    @staticmethod
    def state_bytes(state: dict[str, np.ndarray]) -> int:
        """Memory held by a state (all its tensors), in bytes."""
        return int(sum(a.nbytes for a in state.values()))

    def generate(self, prompt: list[int], max_new_tokens: int, *, temperature: float = 0.0,
                 top_k: int | None = None, seed: int = 0) -> list[int]:
        """Ids generated after `prompt` (ids without <cls>) by nasgraph.generation.generate: one prefill,
        then a step per token (the context window slides past max_len as with a full forward)."""
        from nasgraph.generation import generate

        return generate(self.sequence(), list(prompt), max_new_tokens, self.max_len,
                        temperature=temperature, top_k=top_k, seed=seed)

    def sequence(self) -> "_OneSequence":
        """This decoder as nasgraph.generation's Decoder (one sequence: ids (T,), logits (V,))."""
        return _OneSequence(self)

    def _state_from(self, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
        return {e["input"]: a for e, a in zip(self.state_entries, arrays)}


class _OneSequence:
    """An OrtDecoder as nasgraph.generation's Decoder: one sequence, ids (T,) and logits (V,)."""

    def __init__(self, decoder: OrtDecoder):
        self.decoder = decoder

    def prefill(self, ids: np.ndarray):
        logits, state = self.decoder.prefill(np.asarray(ids, dtype=np.int64)[None])     # (1, T, V)
        return logits[0, -1], state

    def step(self, token: int, state: dict[str, np.ndarray], pos: int):
        logits, state = self.decoder.step(np.array([[token]], dtype=np.int64), state, pos)  # (1, V)
        return logits[0], state
