"""Reports readable at a glance: runtimes in distinct colours, plain tick labels, labelled axes, and
bench lengths that fit the model's max_len by default."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from exporters.bench import default_seq_lens  # noqa: E402
from exporters.bench_report import plot_latency, plot_pareto  # noqa: E402
from nasgraph.spec import load_spec  # noqa: E402


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions made (kept open instead of closed)."""
    kept, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: kept.append(fig))
    yield kept
    for fig in kept:
        close(fig)


def report(subjects=("softmax", "linear")):
    rows = [{"subject": s, "batch": 1, "seq_len": T, "backend": b, "p50_ms": 0.1 * T * (i + 1) * (2 if "torch" in b else 1)}
            for i, s in enumerate(subjects) for T in (32, 64, 101) for b in ("onnxruntime", "torch-eager")]
    return {"rows": rows, "settings": {"threads": 2}}


def test_latency_plot_colours_runtimes_apart_with_plain_ticks(tmp_path, figures):
    plot_latency(report(), tmp_path / "latency.png")
    (ax,) = figures[0].axes
    assert ax.get_xlabel() and ax.get_ylabel()
    lines = {line.get_label(): line.get_color() for line in ax.get_lines()}
    ort = {lines["softmax (ORT)"], lines["linear (ORT)"]}
    eager = {lines["softmax (eager)"], lines["linear (eager)"]}
    assert len(ort | eager) == 4 and all(b > r for (r, _, b, _) in map(matplotlib.colors.to_rgba, ort))
    figures[0].canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels()] + [t.get_text() for t in ax.get_yticklabels()]
    assert {"32", "64", "101"} <= set(labels) and not any("^" in t or "times" in t for t in labels), labels


def test_pareto_plot_has_labelled_axes_and_plain_colourbar(tmp_path, figures):
    points = [{"name": n, "kind": "train", "acc": a, "latency_p50_ms": l, "flops": f}
              for n, a, l, f in (("a", 0.6, 1.0, 20_000), ("b", 0.7, 2.0, 90_000))]
    plot_pareto(points, points, tmp_path / "pareto.png")
    ax, bar = figures[0].axes
    assert ax.get_xlabel() and ax.get_ylabel() and bar.get_ylabel()
    assert [t.get_text() for t in bar.get_yticklabels()] == ["20k", "90k"]


@pytest.mark.parametrize("bench,expected", [("", [3, 6, 12]), ("bench: {seq_lens: [4, 8]}", [4, 8])])
def test_bench_lengths_fit_max_len_unless_given(tiny_spec, write_spec, bench, expected):
    text = tiny_spec().read_text() + bench + "\n"
    path = write_spec(text, "bench.yaml")
    assert default_seq_lens(path, load_spec(path).spec.bench) == expected
