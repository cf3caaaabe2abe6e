"""Runs of one task side by side: the task's headline metric (accuracy, bits per byte, ...) against
cost (FLOPs, or measured ONNX Runtime latency).

Runs of different tasks are refused, never mixed on one front: their metrics do not compare.
A train run gives its test metric (val without a test split); a search run gives its supernet's
mean val metric over seeds and its derived architecture's cost. FLOPs: nasgraph.flops counts of
one sequence at max_len; latency: exporters.pareto.run_point (ORT p50, batch 1, seq_len max_len).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from nasgraph.errors import NasgraphError
from nasgraph.outfile import atomic_write_text
from nasgraph.runs import RunInfo, describe
from nasgraph.textfmt import human, table

COST_LABEL = {"flops": "FLOPs per sequence at max_len (1 multiply-add = 1)",
              "latency_p50_ms": "ONNX Runtime p50 latency (ms), batch 1 at max_len"}


def comparable(paths: Sequence[str | Path]) -> list[RunInfo]:
    """The finished train/search runs at `paths`, all of one task; NasgraphError naming the odd one out."""
    infos = []
    for path in paths:
        info = describe(path)
        if info is None or info.kind not in ("train", "search"):
            what = f"a {info.kind} run" if info else "not a run folder"
            raise NasgraphError(f"{path} is {what}; compare takes train and search runs")
        if info.status != "done":
            raise NasgraphError(f"{path}: the {info.kind} run is {info.status} ({info.detail})")
        infos.append(info)
    tasks = [task_of(info) for info in infos]
    first = infos[0]
    for info, task in zip(infos[1:], tasks[1:]):
        if task != tasks[0]:
            keys = sorted(k for k in set(tasks[0]) | set(task) if tasks[0].get(k) != task.get(k))
            shown = ", ".join(f"{k}: {tasks[0].get(k)!r} vs {task.get(k)!r}" for k in keys[:4])
            raise NasgraphError(f"{info.path} ran another task than {first.path} ({shown}); runs of different "
                                f"tasks are not put on one front: compare each task's runs separately")
    return infos


def task_of(info: RunInfo) -> dict:
    """The run's task options with defaults filled in (so `n_train` left out equals its default)."""
    from nasgraph import tasks
    from nasgraph.spec import load_spec

    return tasks.parse_task(load_spec(info.path / "spec.yaml").spec.task).model_dump()


def flops_point(info: RunInfo) -> dict:
    """Accuracy, FLOPs and parameters of a run's (derived) architecture, without measuring latency."""
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize
    from nasgraph.spec import load_spec

    spec = info.path / ("derived.yaml" if info.kind == "search" else "spec.yaml")
    summary = summarize(compile_spec(load_spec(spec)))
    return {"run": str(info.path), "name": info.path.name, "kind": info.kind, "flops": summary.flops_min,
            "params": summary.params_total, "seq_len": summary.seq_len}


def compare(paths: Sequence[str | Path], *, latency: bool = False, grid=None) -> dict:
    """{"task", "cost", "points"}: one point per run (see module doc), `pareto` marking the front."""
    from exporters.pareto import pareto_front

    infos = comparable(paths)
    if latency:
        from exporters.pareto import run_point

        points = [run_point(info.path, grid) for info in infos]
    else:
        points = [flops_point(info) for info in infos]
    cost = "latency_p50_ms" if latency else "flops"
    for p, info in zip(points, infos):  # the runs' own headline metric (accuracy, or e.g. bits per byte)
        p.update(spec=info.name, metric=info.metric, value=info.value, higher_is_better=info.higher_is_better)
    front = {p["run"] for p in pareto_front([{**p, "acc": p["value"] if p["higher_is_better"] else -p["value"]}
                                             for p in points], cost)}
    for p in points:
        p["pareto"] = p["run"] in front
    return {"task": infos[0].task, "cost": cost, "metric": infos[0].score, "points": points}


def render(result: dict, markdown: bool = False) -> str:
    cost = result["cost"]
    rows = [[p["name"], p["kind"], p["spec"], f"{p['value']:.4f} ({p['metric']})", human(p["flops"]),
             human(p["params"])] + ([f"{p['latency_p50_ms']:.3f}"] if cost != "flops" else [])
            + ["yes" if p["pareto"] else ""] for p in result["points"]]
    headers = ["run", "kind", "spec", result["metric"], "FLOPs", "params"] + (["ORT p50 ms"] if cost != "flops" else [])
    return table(rows, headers + ["Pareto"], markdown=markdown)


def plot(result: dict, path: Path) -> Path:
    """Accuracy against cost, one marker per run kind, each point named; the front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nasgraph.plotting import finish_plot, plain_ticks

    cost, points = result["cost"], result["points"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    metric = result["metric"]
    for kind, marker, color, label in (("train", "o", "C0", f"train runs (test/val {metric})"),
                                       ("search", "^", "C1", f"search runs (supernet val {metric})")):
        sel = [p for p in points if p["kind"] == kind]
        if sel:
            ax.scatter([p[cost] for p in sel], [p["value"] for p in sel], marker=marker, color=color, s=50,
                       edgecolor="k", label=label, zorder=3)
    for p in points:
        ax.annotate(p["name"], (p[cost], p["value"]), fontsize=7, xytext=(4, 4), textcoords="offset points")
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p[cost])
    if len(front) > 1:
        ax.step([p[cost] for p in front], [p["value"] for p in front], where="post", color="C3", alpha=0.6,
                label="Pareto front")
    plain_ticks(ax)
    task = result["task"]
    better = "higher is better" if points[0]["higher_is_better"] else "lower is better"
    ax.set(xlabel=COST_LABEL[cost], ylabel=f"{metric} ({better})",
           title=f"task {task.get('kind', '?')}: {metric} vs {'FLOPs' if cost == 'flops' else 'latency'}")
    return finish_plot(fig, path, ax)


def write(result: dict, out: Path) -> list[Path]:
    """compare.json, compare.md and pareto.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.json").write_text(json.dumps(result, indent=1))
    png = plot(result, out / "pareto.png")
    atomic_write_text(out / "compare.md", f"# Runs of task `{result['task'].get('kind', '?')}`\n\n"
                                          f"{render(result, True)}\n\n![metric vs cost]({png.name})\n")
    return [out / "compare.json", out / "compare.md", png]
