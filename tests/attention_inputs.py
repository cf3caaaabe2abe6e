"""Inputs shared by the registry-wide attention tests (the contract's own, so tests and
`nasgraph check-attention` feed the same masks)."""
from nasgraph.attention.contract import padding_mask

__all__ = ["padding_mask"]
