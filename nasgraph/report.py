"""Run reports a person reads: report.md plus PNG plots (accuracy curves, alphas over time, and for a
search its recommendation with a Pareto plot of the metric against latency or FLOPs)."""
from __future__ import annotations

import json
from pathlib import Path

from nasgraph import distributed
from nasgraph.outfile import atomic_write_text
from nasgraph.plotting import pyplot, finish_plot
from nasgraph.search.verdicts import evidence_text
from nasgraph.textfmt import cost, human, is_fraction, metric_delta, metric_label, metric_value, shown, table
from nasgraph.training.rundir import read_jsonl


def plot_curves(runs: dict[str, Path], out: Path, metric: str = "acc") -> Path:
    """Train loss and the val metric (accuracy, or the task's headline) against step, one line per run."""
    plt = pyplot()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for label, path in runs.items():
        rows = read_jsonl(path / "metrics.jsonl")
        tr = [r for r in rows if r.get("split") == "train" and "acc" in r]
        va = [r for r in rows if r.get("split") == "val" and metric in r]
        ax_loss.plot([r["step"] for r in tr], [r["loss"] for r in tr], label=label)
        ax_acc.plot([r["step"] for r in va], [r[metric] for r in va], marker="o", ms=3, label=label)
    name = "accuracy" if metric == "acc" else metric.replace("_", " ")
    ax_loss.set(xlabel="step", ylabel="train loss", title="training loss")
    ax_acc.set(xlabel="step", ylabel=f"val {name}", title=f"validation {name}")
    return finish_plot(fig, out, ax_loss, ax_acc)


def plot_alphas(seed_dir: Path, labels: dict[str, list[str]], out: Path) -> Path | None:
    """Candidate probabilities (mean over groups) against step, one panel per choice point; None when
    there are none or they never changed (fixed mixing weights: flat lines would say nothing)."""
    rows = read_jsonl(seed_dir / "alphas.jsonl")
    if not rows or all(r["probs"] == rows[0]["probs"] for r in rows):
        return None
    plt = pyplot()
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


def _cell(labels: list[str]) -> str:
    return labels[0] if len(set(labels)) == 1 else "/".join(labels)


def recommendation_lines(rec: dict, markdown: bool = False) -> list[str]:
    """The recommendation as a person reads it: headline, choice points, candidates, warnings."""
    m = rec["metric"]
    bold = (lambda t: f"**{t}**") if markdown else (lambda t: t)  # noqa: E731
    lines = [bold(rec["headline"]), ""]
    rows = [[p["node"], _cell(p["pick"]), p["runner_up"] or "-", evidence_text(p, m)] for p in rec["choice_points"]]
    lines += [table(rows, ["choice point", "pick", "runner-up", "evidence"], markdown=markdown), ""]
    has_latency = any(a["latency_ms"] is not None for a in rec["architectures"])
    rows = []
    for a in sorted(rec["architectures"], key=lambda a: -(a["mean"] if a["mean"] is not None else -1e9)):
        seeds = f" ({len(a['scores'])} seed{'s' if len(a['scores']) > 1 else ''}, {a['source']})" if a["scores"] else ""
        rows.append([a["name"], ", ".join(a["roles"]), metric_value(m, a["mean"], a["sd"]) + seeds,
                     human(a["flops"]) if a["flops"] is not None else "-",
                     f"{a['latency_ms']:.3g}" if a["latency_ms"] is not None else "-", "yes" if a["pareto"] else ""])
    heads = ["architecture", "role", f"{metric_label(m)} (+-sd over seeds)", "FLOPs", "ORT ms" if has_latency else "ORT ms (n/a)",
             "Pareto"]
    lines += [table(rows, heads, markdown=markdown), ""] + race_lines(rec, markdown)
    for w in rec["warnings"]:
        lines.append(f"{'- ' if markdown else ''}{bold('warning')}: {w['message']}. Change: {w['fix']}.")
    return lines


def plot_pareto(rec: dict, out: Path) -> Path | None:
    """Metric against latency (or FLOPs) of the scored architectures of this search; the pick starred."""
    pts = [a for a in rec["architectures"] if a["mean"] is not None]
    if not pts:
        return None
    use_latency = all(a["latency_ms"] is not None for a in pts)
    x = lambda a: a["latency_ms"] if use_latency else a["flops"] if a["flops"] is not None else a["cost"]  # noqa: E731
    m = rec["metric"]
    scale = 100 if is_fraction(m) else 1
    y = lambda a: scale * shown(m, a["mean"])  # noqa: E731 - in the metric's own units (bits per byte, not its negation)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, a in enumerate(sorted(pts, key=x)):
        ax.errorbar(x(a), y(a), yerr=scale * (a["sd"] or 0), fmt="o", ms=5, capsize=3,
                    color="C1" if a["pareto"] else "C0", alpha=0.9)
        ax.annotate(a["name"], (x(a), y(a)), fontsize=7, xytext=(4, 6 if i % 2 else -11),
                    textcoords="offset points")
    front = sorted((a for a in pts if a["pareto"]), key=x)
    ax.plot([x(a) for a in front], [y(a) for a in front], "--", color="C1", lw=1, label="Pareto front")
    pick = rec["pick"]
    if pick["mean"] is not None:
        ax.plot(x(pick), y(pick), "*", ms=16, color="C3",
                label="pick" if rec["confident"] else "leaning (no confident pick)")
    name = metric_label(m)
    ax.set(xlabel="ONNX Runtime latency (ms, measured)" if use_latency else "FLOPs per sequence",
           ylabel=f"{name}{' (%)' if scale == 100 else ''}, mean (bars: sd) over seeds",
           title=f"{rec['strategy']} search: {m.lstrip('-')} vs {'latency' if use_latency else 'FLOPs'}")
    return finish_plot(fig, out, ax)


def _unit_score_lines(rec: dict) -> list[str]:
    """The prune / DARTFormer unit scores per choice point and candidate, when the strategy has them."""
    m, rows = rec["metric"], []
    for p in (p for p in rec["choice_points"] if p["unit_scores"] is not None):
        sds = p["unit_sd"] or [None] * len(p["unit_scores"])
        rows += [[p["node"], c, metric_delta(m, v) + (f" +-{metric_delta(m, sd)}" if sd is not None else "")]
                 for c, v, sd in zip(p["candidates"], p["unit_scores"], sds)]
    if not rows:
        return []
    return ["## Unit scores (drop of the metric when the unit is masked; mean over groups and seeds)", "",
            table(rows, ["choice point", "candidate", "score"], markdown=True), ""]


def race_lines(rec: dict, markdown: bool = True) -> list[str]:
    """teacher_race's race per seed: the contenders its students could not rule out, the from-scratch result."""
    m, rows = rec["metric"], []
    signed = lambda d: ("+" if d >= 0 else "") + metric_delta(m, d)  # noqa: E731
    need = next((st.get("max_cost_full_race") for st in rec.get("stages") or [] if st.get("stage") == "budget"), None)
    for st in (st for st in rec.get("stages") or [] if st.get("stage") == "race"):
        found = ", ".join(f"{c['label']} {signed(-c['gap'])}" + (f" +-{metric_delta(m, c['se'])}" if c["se"] else "")
                          + (f" ({c['why']})" if "inherits" in c.get("why", "") else "")
                          for c in st["contenders"]) or "-"
        if st.get("dropped"):
            blind = set(st.get("no_evidence") or [])
            dropped = ", ".join(d + (" (untested)" if d in blind else "") for d in st["dropped"])
            found += f" ({dropped} not raced: max_cost" + (f"; {need:g} would race all" if need else "") + ")"
        result = "; ".join(f"{r['candidate']} {metric_value(m, r['score'])} vs {metric_value(m, st['defender_score'])}: "
                           f"{signed(r['diff'])}" + (f" +-{metric_delta(m, r['se'])}" if r["se"] else "") +
                           f" ({r['verdict']})" for r in st.get("races") or []) or "-"
        if st.get("races"):
            result += f" ({st['steps']} vs {st['teacher_steps']} steps, {st['eval_n']} examples)"
        rows.append([str(st["seed"]), found, result, st["verdict"]])
    if not rows:
        return []
    title = ("Race (types the teacher's students could not rule out or could not test, trained from scratch against "
             "the pick)")
    return [f"**{title}**" if markdown else f"{title}:", "",
            table(rows, ["seed", "contenders (student - teacher, utility)", "race (paired, same examples)", "verdict"],
                  markdown=markdown), ""]


def write_search_report(run: str | Path) -> Path:
    run = Path(run)
    if not distributed.is_writer():      # torchrun: rank 0 writes the report
        return run / "report.md"
    outcome = json.loads((run / "search.json").read_text())
    rec = json.loads((run / "recommendation.json").read_text())
    kind = outcome["cost_kind"]
    lines = [f"# Search report: {run.name}", "",
             f"Strategy **{outcome['strategy']}**, seeds {outcome['seeds']}, {rec.get('steps') or '?'} steps, "
             f"{rec['wall_seconds']:.0f} s. Cost of the pick: {cost(outcome['cost'], kind)} "
             f"(space {cost(outcome['cost_range'][0], kind)} .. {cost(outcome['cost_range'][1], kind)}). "
             f"How the confidence is decided: docs/recommendation.md.", "",
             "## Recommendation", "", *recommendation_lines(rec, markdown=True), ""]
    lines += _unit_score_lines(rec)
    rows, m = [], rec["metric"].lstrip("-")                       # the task's metric: acc, bits_per_byte, ...
    for r in (r for r in outcome["per_seed"] if "final" in r):   # trial strategies' seeds have no supernet
        val, test = r["final"]["val"].get(m), r["final"].get("test", {}).get(m)
        rows.append([r["seed"], f"{val:.4f}" if val is not None else "-", f"{test:.4f}" if test is not None else "-",
                     f"{r.get('alpha_entropy', float('nan')):.3f}", f"{r['final']['seconds']:.0f}"])
    if rows:
        lines += ["## Per seed (the supernet itself)", "",
                  table(rows, ["seed", f"val {m}", f"test {m}", "alpha entropy (1 = uniform)", "seconds"],
                        markdown=True), ""]
    seeds = [s for s in outcome["seeds"] if (run / f"seed{s}" / "metrics.jsonl").exists()]   # supernet seeds
    plots = [plot_pareto(rec, run / "pareto.png")]
    if seeds:
        plots.append(plot_curves({f"seed {s}": run / f"seed{s}" for s in seeds}, run / "curves.png"))
    plots += [plot_alphas(run / f"seed{s}", outcome["candidates"], run / f"alphas_seed{s}.png") for s in seeds]
    lines += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots if p]
    out = run / "report.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out


def write_train_report(run: str | Path) -> Path:
    run = Path(run)
    if not distributed.is_writer():      # torchrun: rank 0 writes the report
        return run / "report.md"
    result = json.loads((run / "result.json").read_text())
    test = result.get("test", {})
    m = result.get("metric", {}).get("name", "acc")             # the task's headline metric
    best = result["best_val"].get(m, result["best_val"]["acc"])
    lines = [f"# Training report: {run.name}", "",
             table([[result["steps"], f"{result['val'][m]:.4f}", f"{test.get(m, float('nan')):.4f}",
                     f"{best:.4f} @ {result['best_val'].get('step')}", human(result.get("params", 0)),
                     f"{result['seconds']:.0f}"]],
                   ["steps", f"val {m}", f"test {m}", "best val", "params", "seconds"], markdown=True), "",
             f"![curves]({plot_curves({run.name: run}, run / 'curves.png', m).name})"]
    out = run / "report.md"
    atomic_write_text(out, "\n".join(lines) + "\n")
    return out
