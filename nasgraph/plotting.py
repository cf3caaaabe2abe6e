"""Matplotlib helpers shared by every report (search, train, bench, compare): headless backend,
plain tick labels, one finishing step."""
from __future__ import annotations

from pathlib import Path

from nasgraph.textfmt import human, printable


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plain_ticks(ax, axis: str = "both") -> None:
    """Tick labels as plain numbers (128, 0.5, 2.3k), not powers of ten, on log and linear axes."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    plain = FuncFormatter(lambda v, _: human(v) if abs(v) >= 1000 else f"{v:g}")
    for name in ("x", "y") if axis == "both" else (axis,):
        target = ax.xaxis if name == "x" else ax.yaxis
        target.set_major_formatter(plain)
        target.set_minor_formatter(NullFormatter())


def finish_plot(fig, path: Path, *axes) -> Path:
    """Grid and legend on each of `axes`, then save the figure to `path` (110 dpi) and close it. Text that
    cannot be drawn (a non-UTF-8 folder name in a label) shows U+FFFD."""
    from matplotlib.text import Text

    for ax in axes:
        for artist in ax.get_children():
            label = artist.get_label()
            if isinstance(label, str) and printable(label) != label:
                artist.set_label(printable(label))
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    for text in fig.findobj(Text):
        if printable(text.get_text()) != text.get_text():
            text.set_text(printable(text.get_text()))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    return path
