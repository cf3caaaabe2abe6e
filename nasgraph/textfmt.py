"""Plain-text and markdown tables for reports a person reads."""
from __future__ import annotations

from typing import Any, Sequence


def human(n: float) -> str:
    """12345678 -> 12.3M."""
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
