"""One small Registry class behind every extension point (attention types, ops, tasks, strategies)."""
from __future__ import annotations

from typing import Any, Generic, TypeVar

from nasgraph.config import did_you_mean
from nasgraph.errors import ConfigError

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """Name -> class, filled by the `register(name)` decorator.

    `what` names the entries in messages ("attention", "op", "task kind"); `base` is the class every
    entry must subclass; `name_attr` is the class attribute the registered name is written to; `key`
    is the ConfigError key for an unknown name (the spec key that holds it, when there is one);
    `check(cls)` vets every entry; `group` is the entry point group plug-ins register through
    (nasgraph.plugins), loaded the first time a name is missing or the names are listed.
    """

    def __init__(self, what: str, base: type, name_attr: str = "name", key: str = "", group: str = "",
                 check=None):
        self.what, self.base, self.name_attr, self.key, self.group = what, base, name_attr, key, group
        self.check = check
        self._entries: dict[str, T] = {}
        self._plugins_loaded = not group
        self.broken_plugins: list[str] = []  # entry points that failed to load, for messages

    def register(self, name: str, check=None):
        """Class decorator; `check(cls)` (default: the registry's) may raise TypeError for a malformed entry."""
        check = check or self.check

        def wrap(cls: T) -> T:
            if not (isinstance(cls, type) and issubclass(cls, self.base)):
                base = self.base.__name__
                raise TypeError(f"@register('{name}'): {cls!r} is not {'an' if base[0] in 'AEIOU' else 'a'} "
                                f"{base} subclass")
            if name in self._entries:
                raise ValueError(f"{self.what} '{name}' is already registered by {self._entries[name].__module__}")
            if check is not None:
                check(cls)
            setattr(cls, self.name_attr, name)
            self._entries[name] = cls
            return cls

        return wrap

    def load_plugins(self) -> None:
        """Load the entry point group once (a no-op for registries without one)."""
        if not self._plugins_loaded:
            from nasgraph.plugins import load_entry_points

            self._plugins_loaded = True
            self.broken_plugins = load_entry_points(self.group, self)

    def holds(self, cls: type) -> bool:
        return any(entry is cls for entry in self._entries.values())

    def names(self) -> list[str]:
        self.load_plugins()
        return sorted(self._entries)

    def get(self, name: Any) -> T:
        """The class registered as `name`; ConfigError with a did-you-mean and the valid names otherwise."""
        try:
            if name not in self._entries:
                self.load_plugins()
            return self._entries[name]
        except (KeyError, TypeError):
            broken = f"; plug-ins that failed to load: {'; '.join(self.broken_plugins)}" if self.broken_plugins else ""
            raise ConfigError(f"unknown {self.what} '{name}'{did_you_mean(name, self._entries)}; "
                              f"valid: {', '.join(self.names())}{broken}", key=self.key) from None

    def items(self):
        self.load_plugins()
        return sorted(self._entries.items())
