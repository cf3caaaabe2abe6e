"""Tasks: `kinds()`, `parse_task(raw)`, `load_task(config)`, one module per kind.

Adding a task = one new file in this package with a `@register("kind")` class; it is imported here
automatically. Batching (torch) lives in nasgraph.tasks.batching and is not imported here, so the
pure-Python tokenizer stays importable without torch.
"""
import importlib
import pkgutil

from nasgraph.tasks.base import CLS_ID, PAD_ID, Split, Task, TaskConfig, TaskData
from nasgraph.tasks.registry import get, kinds, load_task, num_classes, parse_task, register, vocab_size

_INFRA = {"base", "registry", "tokenize", "batching"}
for _info in pkgutil.iter_modules(__path__):
    if _info.name not in _INFRA and not _info.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_info.name}")

__all__ = ["CLS_ID", "PAD_ID", "Split", "Task", "TaskConfig", "TaskData", "get", "kinds", "load_task",
           "num_classes", "parse_task", "register", "vocab_size"]
