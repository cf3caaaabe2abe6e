"""Next-token scoring with an exported language model (ONNX Runtime), for nasgraph.generation.

Example:
    >>> lm = OnnxLM("model.onnx")
    >>> ids = generate(lm.scorer, lm.tokenizer.ids("def "), 40, lm.max_len)
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from exporters.errors import ExportError
from exporters.runtime import make_session, read_metadata, run
from nasgraph.tasks.tokenize import Tokenizer

REQUIRED = ("nasgraph.tokenizer", "nasgraph.max_len")


class OnnxLM:
    """An exported per-position model (metadata nasgraph.output == "token") on a verified provider."""

    def __init__(self, path: str | Path, provider: str = "cpu", *, threads: int | None = None):
        meta = read_metadata(path)
        missing = [k for k in REQUIRED if k not in meta]
        if missing:
            raise ExportError(f"{path} is not a `nasgraph export` model: metadata lacks {', '.join(missing)}")
        if meta.get("nasgraph.output", "class") != "token":
            raise ExportError(f"{path} is a classifier (one label per text), not a language model: use "
                              f"`nasgraph predict {path} TEXT`")
        self.path, self.max_len = Path(path), int(meta["nasgraph.max_len"])
        self.tokenizer = Tokenizer.from_dict(json.loads(meta["nasgraph.tokenizer"]))
        self.session = make_session(path, provider, threads=threads)
        inputs = [i.name for i in self.session.get_inputs()]
        if len(inputs) != 1:                                      # a decoding step graph: tokens, position, state
            raise ExportError(f"{path} takes {len(inputs)} inputs ({', '.join(inputs[:3])}"
                              f"{', ...' if len(inputs) > 3 else ''}), not one token sequence: a decoding step "
                              f"graph; a full forward per token runs the exported model (the .onnx beside it)")
        self.input_name = inputs[0]

    def scorer(self, ids: np.ndarray) -> np.ndarray:
        """ids (T,) -> logits (T, V), one full forward."""
        return run(self.session, {self.input_name: ids[None].astype(np.int64)})[0][0]     # (T, V)
