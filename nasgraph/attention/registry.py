"""The attention registry: one entry per type, filled by the @register decorator."""
from __future__ import annotations

from typing import Any

from nasgraph.config import parse_config
from nasgraph.errors import ConfigError
from nasgraph.attention.base import Attention, AttentionConfig, Capabilities
from nasgraph.plugins import GROUPS
from nasgraph.registry import Registry


def _check(cls) -> None:
    if not (isinstance(cls.Config, type) and issubclass(cls.Config, AttentionConfig)):
        raise TypeError(f"attention '{cls.__name__}': Config must subclass AttentionConfig")
    if not isinstance(cls.caps, Capabilities):
        raise TypeError(f"attention '{cls.__name__}': caps must be a Capabilities, got {cls.caps!r}")


_REGISTRY = Registry("attention", Attention, group=GROUPS["attention"], check=_check)


def register(name: str):
    """Class decorator: register an Attention subclass under `name` (its Config must be nested)."""
    return _REGISTRY.register(name)


def names() -> list[str]:
    """Registered attention type names, sorted."""
    return _REGISTRY.names()


def get(name: str) -> type[Attention]:
    """The class registered as `name`; ConfigError listing the valid names otherwise."""
    return _REGISTRY.get(name)


def parse_options(name: str, options: dict[str, Any] | None = None) -> AttentionConfig:
    """Validate `options` for type `name` into its typed config."""
    return parse_config(get(name).Config, options, f"attention '{name}'")


def build(name: str, d_model: int, n_heads: int, causal: bool = False, max_len: int | None = None,
          *, head_dim: int | None = None, out_proj: bool = True, **options: Any) -> Attention:
    """Build attention type `name`.

    Args:
        name: a registered type (see `names()`).
        d_model: model width; input and output are (B, T, d_model).
        n_heads: number of heads; head_dim defaults to d_model // n_heads.
        causal: use the causal form (ConfigError if the type has none, or if causal=False and the
            type is causal-only: caps.noncausal=False).
        max_len: longest sequence; required by bounded types (caps.bounded).
        head_dim: per-head width, for heterogeneous layers where this type owns a subset of heads.
        out_proj: False for types used inside a mixed or heterogeneous layer that projects itself.
        **options: the type's own options (its Config), e.g. window=32.

    Example:
        >>> attn = build("softmax", d_model=64, n_heads=4)
        >>> attn(torch.randn(2, 10, 64)).shape
        torch.Size([2, 10, 64])
    """
    cls = get(name)
    if head_dim is None and d_model % n_heads:
        raise ConfigError(f"attention '{name}': d_model {d_model} is not divisible by n_heads {n_heads}")
    if causal and not cls.caps.causal:
        raise ConfigError(f"attention '{name}' has no causal form; causal types: "
                          f"{', '.join(n for n in names() if get(n).caps.causal)}")
    if not causal and not cls.caps.noncausal:
        raise ConfigError(f"attention '{name}' is causal-only (a recurrence reads the past): build it with "
                          f"causal=True; types with a non-causal form: "
                          f"{', '.join(n for n in names() if get(n).caps.noncausal)}")
    if cls.caps.bounded and max_len is None:
        raise ConfigError(f"attention '{name}' is bounded by its sequence length: pass max_len")
    config = parse_options(name, options)
    return cls(d_model, n_heads, config=config, causal=causal, max_len=max_len, head_dim=head_dim,
               out_proj=out_proj)
