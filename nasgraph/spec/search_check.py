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
        get_backend(search.backend).check(search.workers, search.address, search.gpus_per_trial)
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


def candidate_names(model: Any) -> list[str]:
    """Attention type names of every choice point written in the raw `model:` section, any form."""
    if isinstance(model, list):
        return [n for item in model for n in candidate_names(item)]
    if not isinstance(model, dict):
        return []
    cands = model.get("candidates")
    own = [c if isinstance(c, str) else next(iter(c), "") for c in cands if isinstance(c, (str, dict))] \
        if isinstance(cands, list) and len(cands) > 1 else []
    return own + [n for k, v in model.items() if k != "candidates" for n in candidate_names(v)]


def check_decode_objective(spec, raw: dict, error_at: ErrorAt, causal_task: bool) -> None:
    """`objective: latency: {mode: decode}` needs a causal language model whose candidates all decode."""
    from nasgraph import attention

    latency = spec.search.objective.latency
    if latency is None or latency.mode != "decode":
        return
    where = ("search", "objective", "latency", "mode")
    if not causal_task:
        raise error_at("latency mode 'decode' is the per-token cost of generation: it needs a per-position task "
                       "(lm, mqar); use mode: forward", where)
    for name in dict.fromkeys(candidate_names(raw.get("model"))):
        caps = attention.get(name).caps
        if not caps.decodable:
            raise error_at(f"latency mode 'decode': candidate '{name}' has no decoding form ({caps.decode_note}); "
                           f"drop it or use mode: forward", where)
