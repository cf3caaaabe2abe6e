"""Plug-ins: attention types, tasks and search strategies from the user's own modules, no fork needed.

Both ways in end in the registries' own `@register`, so the contract applies (typed Config,
capability flags, no duplicate names):

- an installed package declares an entry point in one of GROUPS (its pyproject.toml):

      [project.entry-points."nasgraph.attention"]
      my_attention = "my_package.my_attention"      # a module whose classes use @register
      gated = "my_package.gated:GatedAttention"     # or a class, registered as "gated"

  The group is loaded the first time its registry is asked for a name it lacks or for its names.
- a spec names modules to import before it is validated: `plugins: [my_package.my_attention]`
  (a dotted module name on sys.path, or a .py file relative to the spec's folder).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from nasgraph.errors import NasgraphError

GROUPS = {"attention": "nasgraph.attention", "task kind": "nasgraph.tasks",
          "search strategy": "nasgraph.strategies"}


class PluginError(NasgraphError):
    """A plug-in module that could not be imported (or whose registration failed)."""


def import_plugin(target: str, base_dir: str | Path | None = None) -> ModuleType:
    """Import a plug-in: a dotted module name, or a path to a .py file (relative to `base_dir`).

    Raises PluginError naming the plug-in and the underlying error (ImportError, a bad @register, ...).
    """
    if not isinstance(target, str) or not target.strip():
        raise PluginError(f"a plug-in is a module name or a .py file, got {target!r}")
    try:
        if target.endswith(".py"):
            return _import_file(Path(base_dir or ".") / target)
        return importlib.import_module(target)
    except PluginError:
        raise
    except Exception as err:  # the user's module may fail in any way: report it, located, in one line
        hint = " (is its folder on PYTHONPATH, or the package installed?)" if isinstance(err, ModuleNotFoundError) else ""
        raise PluginError(f"cannot import plug-in '{target}': {type(err).__name__}: {err}{hint}") from None


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise PluginError(f"plug-in file not found: {path}")
    name = f"nasgraph_plugin_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:  # one import per file: a second import would register its names twice
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_entry_points(group: str, registry) -> list[str]:
    """Load every entry point of `group` into `registry`; returns one line per entry that failed.

    A module entry registers its own classes; a class entry that is not registered yet is registered
    under the entry point's name. Failures are warned about (the rest still loads).
    """
    failed = []
    for ep in entry_points(group=group):
        try:
            obj = ep.load()
            if isinstance(obj, type) and not registry.holds(obj):
                registry.register(ep.name)(obj)
        except Exception as err:  # a broken plug-in must not take the built-in entries down with it
            line = f"{ep.name} = {ep.value} ({type(err).__name__}: {err})"
            warnings.warn(f"nasgraph plug-in failed to load from entry point group {group}: {line}", stacklevel=2)
            failed.append(line)
    return failed


def import_spec_plugins(raw: dict, base_dir: Path, error_at) -> None:
    """A spec's `plugins:` list, imported before the spec is validated (so its names are known).

    A .py path is made absolute in `raw`, so a run folder's spec snapshot still finds it. Problems
    are `error_at(message, ("plugins", i))` (a located SpecError).
    """
    plugins = raw.get("plugins")
    if plugins is None:
        return
    if not isinstance(plugins, list):
        raise error_at(f"expected a list of modules (e.g. [my_package.my_attention]), got {plugins!r:.60}",
                       ("plugins",))
    for i, target in enumerate(plugins):
        try:
            module = import_plugin(target, base_dir)
        except PluginError as err:
            raise error_at(str(err), ("plugins", i)) from None
        if target.endswith(".py"):
            plugins[i] = module.__file__
