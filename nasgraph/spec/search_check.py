"""The `search:` section against the strategy registry: name, the strategy's own options (flat,
beside the shared keys), and cross-field checks such as a topk above a choice point's candidates;
and the trial backend (name, workers, address) against the backend registry.

The registry is the single source of truth: the schema lists no strategy names.
"""
from __future__ import annotations

from typing import Any, Callable

from nasgraph.errors import ConfigError, SpecError
from nasgraph.spec.paths import KeyPath

ErrorAt = Callable[[str, KeyPath], SpecError]


def choice_sizes(model: Any) -> list[int]:
    """Candidate count of every choice point written in the raw `model:` section, any form: each
    mapping whose `candidates` lists several types."""
    if isinstance(model, list):
        return [n for item in model for n in choice_sizes(item)]
    if not isinstance(model, dict):
        return []
    cands = model.get("candidates")
    own = [len(cands)] if isinstance(cands, list) and len(cands) > 1 else []
    return own + [n for k, v in model.items() if k != "candidates" for n in choice_sizes(v)]


def check_search(spec, raw: dict, error_at: ErrorAt) -> None:
    from nasgraph.backends import get as get_backend
    from nasgraph.search.strategies import get   # torch-heavy: imported only when a spec is checked

    search = spec.search
    try:
        get_backend(search.backend).check(search.workers, search.address)
    except ConfigError as err:
        raise error_at(str(err), ("search", err.key or "backend")) from None
    try:
        cls = get(search.strategy)
    except ConfigError as err:
        raise error_at(str(err), ("search", "strategy")) from None
    try:
        config = cls.parse(search.options)
        cls.check(config, search, choice_sizes(raw.get("model")))
    except ConfigError as err:
        raise error_at(f"strategy '{search.strategy}': {err}" if not str(err).startswith("strategy") else str(err),
                       ("search",) + tuple(int(k) if k.isdigit() else k for k in err.key.split(".") if k)) from None
