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
    is the ConfigError key for an unknown name (the spec key that holds it, when there is one).
    """

    def __init__(self, what: str, base: type, name_attr: str = "name", key: str = ""):
        self.what, self.base, self.name_attr, self.key = what, base, name_attr, key
        self._entries: dict[str, T] = {}

    def register(self, name: str, check=None):
        """Class decorator; `check(cls)` may raise TypeError for a malformed entry."""

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

    def names(self) -> list[str]:
        return sorted(self._entries)

    def get(self, name: Any) -> T:
        """The class registered as `name`; ConfigError with a did-you-mean and the valid names otherwise."""
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise ConfigError(f"unknown {self.what} '{name}'{did_you_mean(name, self._entries)}; "
                              f"valid: {', '.join(self.names())}", key=self.key) from None

    def items(self):
        return sorted(self._entries.items())
