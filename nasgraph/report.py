"""Run reports a person reads: report.md plus PNG plots (accuracy curves, alphas over time)."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph.textfmt import cost, human, table
from nasgraph.training.rundir import read_jsonl


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_curves(runs: dict[str, Path], out: Path) -> Path:
    """Train loss and val accuracy against step, one line per run."""
    plt = _plt()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, path in runs.items():
        rows = read_jsonl(path / "metrics.jsonl")
        tr = [r for r in rows if r.get("split") == "train" and "acc" in r]
        va = [r for r in rows if r.get("split") == "val"]
        ax_loss.plot([r["step"] for r in tr], [r["loss"] for r in tr], label=label)
        ax_acc.plot([r["step"] for r in va], [r["acc"] for r in va], marker="o", ms=3, label=label)
    ax_loss.set(xlabel="step", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="step", ylabel="val accuracy", title="validation accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def plot_alphas(seed_dir: Path, labels: dict[str, list[str]], out: Path) -> Path | None:
    """Candidate probabilities (mean over groups) against step, one panel per choice point."""
    rows = read_jsonl(seed_dir / "alphas.jsonl")
    if not rows:
        return None
    plt = _plt()
    nodes = list(labels)
    cols = min(4, len(nodes))
    nrows = (len(nodes) + cols - 1) // cols
    fig, axes = plt.subplots(nrows, cols, figsize=(3.4 * cols, 2.6 * nrows), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, node in zip(axes.flat, nodes):
        for c, label in enumerate(labels[node]):
            ys = [sum(g[c] for g in r["probs"][node]) / len(r["probs"][node]) for r in rows]
            ax.plot(steps, ys, label=label)
        ax.set(title=node, xlabel="step", ylabel="candidate probability (mean over groups)", ylim=(0, 1))
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=7)
    for ax in list(axes.flat)[len(nodes):]:
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def write_search_report(run: str | Path) -> Path:
    run = Path(run)
    outcome = json.loads((run / "search.json").read_text())
    labels, kind = outcome["labels"], outcome["cost_kind"]
    lines = [f"# Search report: {run.name}", "",
             f"Strategy **{outcome['strategy']}**, seeds {outcome['seeds']}, agreement between seeds "
             f"**{outcome['agreement']:.0%}**. Cost of the pick: {cost(outcome['cost'], kind)} "
             f"(space {cost(outcome['cost_range'][0], kind)} .. {cost(outcome['cost_range'][1], kind)}).", "",
             "## Pick (vote over seeds)", "",
             table([[n, ", ".join(l)] for n, l in labels.items()], ["choice point", "candidate per group"], markdown=True),
             ""]
    rows = []
    for r in outcome["per_seed"]:
        val = r["final"]["val"]["acc"]
        test = r["final"].get("test", {}).get("acc")
        rows.append([r["seed"], f"{val:.4f}", f"{test:.4f}" if test is not None else "-",
                     f"{r.get('alpha_entropy', float('nan')):.3f}", r["collapse"]["dominant"],
                     f"{r['collapse']['dominant_share']:.0%}", f"{r['final']['seconds']:.0f}"])
    lines += ["## Per seed (supernet)", "",
              table(rows, ["seed", "val acc", "test acc", "alpha entropy", "dominant", "share", "seconds"],
                    markdown=True), ""]
    if outcome["collapse"]["collapsed"]:
        lines += [f"**Collapse warning:** every choice went to `{outcome['collapse']['dominant']}`.", ""]
    plots = [plot_curves({f"seed {s}": run / f"seed{s}" for s in outcome["seeds"]}, run / "curves.png")]
    for s in outcome["seeds"]:
        p = plot_alphas(run / f"seed{s}", outcome["candidates"], run / f"alphas_seed{s}.png")
        if p:
            plots.append(p)
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots]
    out = run / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def write_train_report(run: str | Path) -> Path:
    run = Path(run)
    result = json.loads((run / "result.json").read_text())
    test = result.get("test", {})
    lines = [f"# Training report: {run.name}", "",
             table([[result["steps"], f"{result['val']['acc']:.4f}", f"{test.get('acc', float('nan')):.4f}",
                     f"{result['best_val']['acc']:.4f} @ {result['best_val'].get('step')}", human(result.get("params", 0)),
                     f"{result['seconds']:.0f}"]],
                   ["steps", "val acc", "test acc", "best val", "params", "seconds"], markdown=True), "",
             f"![curves]({plot_curves({run.name: run}, run / 'curves.png').name})"]
    out = run / "report.md"
    out.write_text("\n".join(lines) + "\n")
    return out
