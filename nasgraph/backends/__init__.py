"""Where a search's independent trials run: one after another in this process, or as Ray Tune trials.

A backend maps a picklable function over a batch of items (`TrialBackend.map`); it knows nothing of
search, models or data. The search runner opens one (`open_backend`) and hands it to the strategies
through the search context. Adding one = a file here with `@register("name")`.
"""
from nasgraph.backends.base import TrialBackend
from nasgraph.backends.registry import BACKENDS, get, open_backend, register
from nasgraph.backends import in_process, ray_tune  # noqa: F401  (registers the built-in backends)

__all__ = ["BACKENDS", "TrialBackend", "get", "open_backend", "register"]
