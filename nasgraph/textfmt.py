"""Plain-text and markdown tables for reports a person reads."""
from __future__ import annotations

import math
import re
from typing import Any, Sequence


def scientific(n: int | float) -> str:
    """A number of any size as 1.6e118 (ints with thousands of digits included)."""
    if n == 0 or isinstance(n, float) and not math.isfinite(n):
        return str(n)
    exponent = math.floor(math.log10(abs(n)))
    mantissa = n / 10 ** exponent if exponent < 300 else 10 ** (math.log10(abs(n)) - exponent)
    return f"{'-' if n < 0 else ''}{abs(mantissa):.2g}e{exponent}"


def count(n: int) -> str:
    """An exact count with separators (17,179,869,184), or 1.6e118 past 15 digits."""
    return f"{n:,}" if abs(n) < 10 ** 15 else scientific(n)


def human(n: float) -> str:
    """12345678 -> 12.3M; past 1e15 -> 1.2e+18 style (1.2e18)."""
    if abs(n) >= 10 ** 15:
        return scientific(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:g}" if isinstance(n, float) else str(n)


def cost(value: float, kind: str) -> str:
    """A search cost with its unit: FLOPs (1 multiply-add = 1) or measured latency in microseconds."""
    return f"{human(value)} FLOPs" if kind == "flops" else f"{value / 1000:.3g} ms ORT latency"


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str], markdown: bool = False) -> str:
    """Aligned text table (or a markdown table)."""
    cells = [[str(c) for c in r] for r in rows]
    if markdown:
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return "\n".join(out + ["| " + " | ".join(r) + " |" for r in cells])
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in cells])


def is_fraction(metric: str) -> bool:
    """Accuracy-like metrics (in [0, 1]) are shown in percent / points."""
    return metric.endswith("acc") or metric.endswith("accuracy")


def metric_label(metric: str) -> str:
    """A score's name as a person reads it: "-bits_per_byte" (a negated lower-is-better metric, the
    search's higher-is-better score) -> "bits_per_byte (lower is better)"; others unchanged."""
    return f"{metric[1:]} (lower is better)" if metric.startswith("-") else metric


def shown(metric: str, v: float | None) -> float | None:
    """A score in the metric's own units: a "-bits_per_byte" score -> bits per byte."""
    return -v if v is not None and metric.startswith("-") else v


def metric_value(metric: str, v: float | None, sd: float | None = None) -> str:
    """0.8123 -> 81.2% (acc), with "+-sd" when given; a "-x" score as x (-3.21 -> 3.21); others as they are."""
    if v is None:
        return "not scored"
    v = shown(metric, v)
    if is_fraction(metric):
        return f"{100 * v:.1f}%" + (f" +-{100 * sd:.1f}" if sd is not None else "")
    return f"{v:.4g}" + (f" +-{sd:.2g}" if sd is not None else "")


def metric_delta(metric: str, d: float) -> str:
    """A difference of the metric: 0.041 -> 4.1 pts (acc)."""
    return f"{100 * d:.1f} pts" if is_fraction(metric) else f"{d:.3g}"


def printable(text: str) -> str:
    """Bytes that are not valid UTF-8 (lone surrogates from argv or a byte model's output) as U+FFFD, so
    the text prints on any UTF-8 stream."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


_UNSAFE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(ch: str) -> str:
    o = ord(ch)
    if 0xDC80 <= o <= 0xDCFF:                          # a byte that was not UTF-8 (surrogateescape)
        return f"\\x{o - 0xDC00:02x}"
    return f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}"            # a byte as \\xNN, a character as \\uNNNN


def terminal_safe(text: str) -> str:
    """`text` for a terminal, so generated text cannot drive it: control characters (ESC, CR, C1, bidi
    overrides) escaped as \\x1b, \\u009b, \\u202e, a byte that was not UTF-8 as \\xff; newlines and tabs kept."""
    return _UNSAFE.sub(lambda m: _escape(m.group()), text)


def json_safe(line: str) -> str:
    """A JSON text with DEL, C1 controls and bidi overrides escaped as \\u00XX (json.dumps escapes only C0
    controls with ensure_ascii=False); the same JSON value."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", line)
