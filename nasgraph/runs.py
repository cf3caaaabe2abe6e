"""What a run folder is, read from its files: kind, task, status and headline metric.

The kind comes from the folder's ownership marker (`.nasgraph-run.json`, {"kind": ...}) when it has
one, else from the files the commands write (search.json, result.json, report.json, summary.json).
Nothing here writes; a damaged file makes the run "damaged", never an exception.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nasgraph import runfolder
from nasgraph.errors import NasgraphError


@dataclass
class RunInfo:
    path: Path
    kind: str                       # search | train | bench | compile | demo
    status: str                     # done | incomplete | damaged
    name: str = ""                  # the spec's name
    task: dict[str, Any] = field(default_factory=dict)  # the spec's task section
    metric: str = ""                # what `value` is, e.g. "test acc", "val bits_per_byte"
    value: float | None = None
    score: str = ""                 # the metric's bare name ("acc", "bits_per_byte")
    higher_is_better: bool = True
    detail: str = ""                # one more fact (steps, seeds, pick, problem)

    @property
    def task_label(self) -> str:
        if not self.task:
            return "-"
        extra = f" (max_len {self.task['max_len']})" if "max_len" in self.task else ""
        return f"{self.task.get('kind', '?')}{extra}"

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def kind_of(path: Path) -> str | None:
    """The folder's run kind: its marker, else its files; None for a folder that is no run (never raises)."""
    try:
        return runfolder.kind_of(path)
    except NasgraphError:   # a damaged marker: judge by the files
        return runfolder.legacy_kind(Path(path))


def _spec(path: Path) -> tuple[str, dict]:
    """(name, task section) of the run's spec snapshot, read as plain YAML (no plug-ins imported)."""
    try:
        raw = yaml.safe_load((path / "spec.yaml").read_text(encoding="utf-8"))
        return str(raw.get("name", "")), dict(raw.get("task") or {})
    except (OSError, yaml.YAMLError, AttributeError, TypeError, ValueError):
        return "", {}


def _search(info: RunInfo) -> None:
    outcome = _json(info.path / "search.json")
    score = outcome.get("metric", "acc")           # "-bits_per_byte": lower is better
    name, info.higher_is_better = score.lstrip("-"), not score.startswith("-")
    values = [r["final"]["val"][name] for r in outcome["per_seed"] if "val" in r.get("final", {})]
    info.metric, info.score, info.value = f"supernet val {name}", name, sum(values) / len(values) if values else None
    picks = sorted({label for labels in outcome["labels"].values() for label in labels})
    info.detail = f"{outcome['strategy']}, {len(outcome['seeds'])} seed(s), picks {', '.join(picks)}"


def _train(info: RunInfo) -> None:
    result = _json(info.path / "result.json")
    split = "test" if "test" in result else "val"
    name = result.get("metric", {}).get("name", "acc")
    info.higher_is_better = result.get("metric", {}).get("higher_is_better", True)
    info.metric, info.score, info.value = f"{split} {name}", name, result[split][name]
    info.detail = f"{result['steps']} steps, {result.get('params', 0):,} params"


def _bench(info: RunInfo) -> None:
    report = _json(info.path / "report.json")
    rows = [r for r in report["rows"] if r["backend"] == "onnxruntime"]
    if rows:
        first = min(rows, key=lambda r: (r["batch"], -r["seq_len"]))
        info.metric, info.value = f"ORT p50 ms (B={first['batch']}, T={first['seq_len']})", first["p50_ms"]
    info.detail = f"{report['mode']}: {', '.join(s['name'] for s in report['subjects'])}"


def _compile(info: RunInfo) -> None:
    summary = _json(info.path / "summary.json")
    info.name = info.name or summary.get("name", "")
    info.metric, info.value = "architectures", summary.get("space_size")


def _last_step(path: Path) -> str:
    logs = sorted(path.glob("metrics.jsonl")) or sorted(path.glob("seed*/metrics.jsonl"))
    steps = []
    for log in logs:
        lines = [l for l in log.read_text(encoding="utf-8").splitlines() if l.strip()]
        if lines:
            steps.append(json.loads(lines[-1]).get("step", 0))
    return f"stopped at step {max(steps)}" if steps else "no steps logged"


_DONE_FILE = {"search": "search.json", "train": "result.json", "bench": "report.json", "compile": "summary.json"}
_READ = {"search": _search, "train": _train, "bench": _bench, "compile": _compile}


def describe(path: str | Path) -> RunInfo | None:
    """A RunInfo for a run folder, or None when the folder is no run."""
    path = Path(path)
    kind = kind_of(path) if path.is_dir() else None
    if kind is None:
        return None
    name, task = _spec(path)
    info = RunInfo(path, kind, "done", name, task)
    if kind == "demo":
        info.detail = "folders: " + ", ".join(sorted(p.name for p in path.iterdir() if p.is_dir()))
        return info
    try:
        if not (path / _DONE_FILE[kind]).exists():
            info.status, info.detail = "incomplete", _last_step(path)
            return info
        _READ[kind](info)
    except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as err:
        info.status, info.detail = "damaged", f"{type(err).__name__}: {err}"[:120]
    return info


def find_runs(root: str | Path, depth: int = 3) -> list[RunInfo]:
    """Every run at or below `root` (a demo folder's runs too), by path."""
    root = Path(root)
    found: list[RunInfo] = []
    info = describe(root)
    if info is not None:
        found.append(info)
        if info.kind != "demo":
            return found
    if depth > 0 and root.is_dir():
        for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found += find_runs(sub, depth - 1)
    return found
