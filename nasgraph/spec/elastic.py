"""Elastic dimensions (mixFormer): `d_model`, `n_heads`, `n_layers` and `ffn.mult` given as
`{choices: [...]}` instead of one value. The supernet is built at the largest value of each; a
sub-network takes one value per dimension (ffn.mult: one per layer). Only the standard encoder has them.
"""
from __future__ import annotations

from itertools import product
from typing import Any, Callable

from nasgraph.spec.paths import KeyPath
from nasgraph.spec.schema import IntChoice

ELASTIC_KEYS = ("d_model", "n_heads", "n_layers")


def values(v: Any) -> list:
    """The values a dimension may take: its choices, or the one value written."""
    return list(v.choices) if isinstance(v, IntChoice) else [v]


def largest(v: Any):
    return max(values(v)) if v is not None else None


def elastic_paths(model) -> list[KeyPath]:
    """Where the spec gives choices instead of a value."""
    paths: list[KeyPath] = [("model", k) for k in ELASTIC_KEYS if isinstance(getattr(model, k), IntChoice)]
    if isinstance(model.ffn.mult, IntChoice):
        paths.append(("model", "ffn", "mult"))
    for i, layer in enumerate(model.layers or []):
        if layer.ffn is not None and isinstance(layer.ffn.mult, IntChoice):
            paths.append(("model", "layers", i, "ffn", "mult"))
    return paths


def check_elastic(model, error_at: Callable) -> None:
    """Elastic dimensions: the standard encoder only; every d_model x n_heads pair divisible; no
    per-head attention with a choice of head counts; `hidden` does not hide an elastic mult."""
    paths = elastic_paths(model)
    form = "graph" if model.graph is not None else "nodes" if model.nodes is not None else None
    if paths and form:
        raise error_at(f"elastic dimensions ({{choices: [...]}}) need the standard encoder (n_layers), not the "
                       f"'{form}' form: give one value", paths[0])
    for d, h in product(values(model.d_model), values(model.n_heads)):
        if d % h:
            key = "n_heads" if isinstance(model.n_heads, IntChoice) or not isinstance(model.d_model, IntChoice) \
                else "d_model"
            raise error_at(f"d_model {d} is not divisible by n_heads {h}"
                           + (": every d_model choice must divide by every n_heads choice" if paths else ""),
                           ("model", key))
    if not paths:
        return
    sites = [(model.attention, ("model", "attention"))] + [
        (l.attention, ("model", "layers", i, "attention")) for i, l in enumerate(model.layers or [])]
    for attn, path in sites:
        if attn is None:
            continue
        if attn.heads is not None or (attn.granularity == "head" and attn.candidates and len(attn.candidates) > 1):
            raise error_at("per-head attention choices do not combine with elastic dimensions (the head count "
                           "and head width change): use granularity: layer", path)
    for ffn, path in [(model.ffn, ("model", "ffn"))] + [
            (l.ffn, ("model", "layers", i, "ffn")) for i, l in enumerate(model.layers or []) if l.ffn]:
        if ffn.hidden is not None and isinstance(ffn.mult, IntChoice):
            raise error_at("'hidden' fixes the FFN width and hides the elastic 'mult' choices: drop one",
                           path + ("hidden",))
