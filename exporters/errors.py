"""Errors raised by the exporters package; all are NasgraphErrors (one-line CLI message, exit code 2)."""
from __future__ import annotations

from nasgraph.errors import NasgraphError


class ExportError(NasgraphError):
    """The model could not be exported, or the target file is in the way."""


class ParityError(ExportError):
    """PyTorch and ONNX Runtime disagree beyond the tolerance; the message carries the numbers."""


class ProviderError(NasgraphError):
    """An unknown execution provider, or one that onnxruntime did not actually use."""
