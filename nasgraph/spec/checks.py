"""Checks across fields that the typed schema cannot express, each raising a located SpecError.

`check_attention` is public so that the graph compiler can run the same checks on attention ops
declared in the `graph:` and `nodes:` forms.
"""
from __future__ import annotations

from typing import Any, Callable

from nasgraph import attention
from nasgraph.ops.attention import normalize_candidate as split_candidate
from nasgraph.errors import ConfigError, SpecError
from nasgraph.spec.elastic import check_elastic, largest
from nasgraph.spec.paths import KeyPath

ErrorAt = Callable[[str, KeyPath], SpecError]


def _get(raw: Any, path: KeyPath) -> Any:
    for element in path:
        try:
            raw = raw[element]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def check_attention(attn: Any, path: KeyPath, error_at: ErrorAt, *, n_heads: int,
                    max_len: int | None, raw: Any = None, causal_task: bool = False) -> None:
    """Candidate (or per-head) names and options, causal forms, bounded types, `heads` length.

    `attn` has .candidates, .heads and .causal (AttentionSpec or the attention op's config); `raw`
    is the data written at `path` (to place errors right when the shorthand `attention: softmax`
    was used). `causal_task`: a per-position task, whose attention is causal unless set otherwise.
    """
    causal = attn.causal or (causal_task and "causal" not in getattr(attn, "model_fields_set", ()))
    key = "heads" if attn.heads is not None else "candidates"
    items = attn.heads if attn.heads is not None else attn.candidates
    seen: dict[str, int] = {}
    for i, candidate in enumerate(items):
        where = _item_path(raw, path, key, i)
        try:
            name, options = split_candidate(candidate)
        except ValueError as err:
            raise error_at(str(err), where) from None
        try:
            cls = attention.get(name)
            attention.parse_options(name, options).check_heads(_group_heads(attn, items, i, n_heads))
        except ConfigError as err:
            sub = tuple(int(k) if k.isdigit() else k for k in err.key.split(".")) if err.key else ()
            raise error_at(str(err), where + ((name,) + sub if sub else ())) from None
        if causal and not cls.caps.causal:
            causal_types = [n for n in attention.names() if attention.get(n).caps.causal]
            raise error_at(f"attention '{name}' has no causal form (causal: true); types with one: "
                           f"{', '.join(causal_types)}", where)
        if not causal and not cls.caps.noncausal:
            both = [n for n in attention.names() if attention.get(n).caps.noncausal]
            raise error_at(f"attention '{name}' is causal-only (a recurrence): set causal: true in this "
                           f"attention, or use a type with a non-causal form: {', '.join(both)}", where)
        if cls.caps.bounded and max_len is None:
            raise error_at(f"attention '{name}' is bounded by its sequence length and needs the task's "
                           f"max_len: add task.max_len", where)
        label = repr((name, sorted(options.items())))
        if key == "candidates" and label in seen:
            raise error_at(f"candidate '{name}' repeats candidate [{seen[label]}] (same options): "
                           f"a choice between identical types is no choice", where)
        seen[label] = i
    if attn.heads is not None and len(attn.heads) != n_heads:
        raise error_at(f"'heads' lists {len(attn.heads)} types but n_heads is {n_heads}: give one type "
                       f"per head", path + ("heads",))


def _group_heads(attn: Any, items: list, index: int, n_heads: int) -> int:
    """Heads item `index` runs with: its count in a `heads` list, 1 when chosen per head (a derived
    layer may give a type any number of heads, down to one), else n_heads."""
    if attn.heads is not None:
        return sum(split_candidate(c) == split_candidate(items[index]) for c in items)
    return 1 if attn.granularity == "head" else n_heads


def _item_path(raw: Any, path: KeyPath, key: str, index: int) -> KeyPath:
    """Where candidate `index` was written: `attention: {candidates: [...]}` or a shorthand."""
    if raw is None or (isinstance(raw, dict) and key in raw):
        return path + (key, index)
    return path + (index,) if isinstance(raw, list) else path  # [a, b] | softmax | {local: {...}}


def check_model(spec, raw: dict, error_at: ErrorAt, max_len: int | None, causal_task: bool = False) -> None:
    """Width/heads, and every attention of the standard encoder (model.attention, model.layers[i]).

    `max_len` is the task's (parsed, defaults applied): bounded attention types are built with it.
    """
    model = spec.model
    _check_form_keys(model, raw.get("model") or {}, error_at)
    check_elastic(model, error_at)   # every d_model / n_heads pair divides (one pair without choices)
    sites: list[tuple[Any, KeyPath]] = []
    if model.attention is not None:
        sites.append((model.attention, ("model", "attention")))
    for i, layer in enumerate(model.layers or []):
        if layer.attention is not None:
            sites.append((layer.attention, ("model", "layers", i, "attention")))
    for attn, path in sites:
        check_attention(attn, path, error_at, n_heads=largest(model.n_heads), max_len=max_len, raw=_get(raw, path),
                        causal_task=causal_task)


STANDARD_ONLY = {"n_layers": "the layers are the graph's own",
                 "layers": "the layers are the graph's own",
                 "attention": "each attention step or node carries its own candidates"}


def _check_form_keys(model, raw_model: dict, error_at: ErrorAt) -> None:
    """Keys of the standard encoder are errors in the `graph:` and `nodes:` forms (never ignored)."""
    form = "graph" if model.graph is not None else "nodes" if model.nodes is not None else None
    if form is None:
        return
    for key, why in STANDARD_ONLY.items():
        if key in raw_model:
            raise error_at(f"'{key}' belongs to the standard encoder and has no effect with '{form}' "
                           f"({why}): remove it", ("model", key))
    if isinstance(raw_model.get("norm"), dict) and "placement" in raw_model["norm"]:
        raise error_at(f"norm.placement belongs to the standard encoder and has no effect with '{form}' "
                       f"(place the norm steps yourself): remove it", ("model", "norm", "placement"))


def check_task(raw: dict, error_at: ErrorAt, base_dir: str | None = None):
    """The task section, by its kind's own typed config (nasgraph.tasks.parse_task).

    Relative data paths are resolved against `base_dir` (the spec's folder). Returns the TaskConfig.
    """
    from nasgraph import tasks  # the tasks package imports data code: load it only when checking

    try:
        return tasks.parse_task(raw["task"], base_dir=base_dir)
    except ConfigError as err:
        raise error_at(str(err), _task_key(err)) from None


def load_task_data(config, error_at: ErrorAt):
    """tasks.load_task(config), a ConfigError (a missing, empty or too short data file) located at its
    task key (task.path): the data files are read when a command needs them, after the spec's checks."""
    from nasgraph import tasks

    try:
        return tasks.load_task(config)
    except ConfigError as err:
        raise error_at(str(err), _task_key(err)) from None


def _task_key(err: ConfigError) -> KeyPath:
    return ("task",) + (tuple(int(k) if k.isdigit() else k for k in err.key.split(".")) if err.key else ())


def check_strategy(spec, error_at: ErrorAt) -> None:
    """search.strategy names a registered strategy (built-in or plug-in)."""
    from nasgraph.search.strategies import get  # strategies import the search code: load it only when checking

    try:
        get(spec.search.strategy)
    except ConfigError as err:
        raise error_at(str(err), ("search", "strategy")) from None
