"""A run directory: spec snapshot, metrics.jsonl, alphas.jsonl, atomic checkpoints, result.json."""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml

from nasgraph.errors import NasgraphError


def atomic_write_bytes(path: Path, write) -> None:
    """Write via a temp file in the same folder, then rename: a crash never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


class RunDir:
    """One run's folder.

    Without `resume`, a folder that already holds a run (its `marker` file exists) is refused, so
    nothing is overwritten; with `resume`, the folder must exist. `resuming` tells whether there is a
    checkpoint to continue from.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, marker: str = "metrics.jsonl"):
        self.path = Path(path)
        self.checkpoint_path = self.path / "checkpoints" / "last.pt"
        if resume and not self.path.is_dir():
            raise NasgraphError(f"{self.path}: nothing to resume (no such run folder)")
        if not resume and (self.path / marker).exists():
            raise NasgraphError(f"{self.path} already holds a run; pass --resume to continue it or choose "
                                f"another --out (nothing was overwritten)")
        self.resuming = resume and self.checkpoint_path.exists()
        self.path.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def finished(path: str | Path) -> dict | None:
        """The run's result.json when it completed, else None."""
        p = Path(path) / "result.json"
        return json.loads(p.read_text()) if p.exists() else None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_spec(self, raw: dict, name: str = "spec.yaml") -> Path:
        p = self.file(name)
        atomic_write_bytes(p, lambda f: f.write(yaml.safe_dump(raw, sort_keys=False).encode()))
        return p

    def log(self, name: str, record: dict) -> None:
        with open(self.file(name), "a") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def truncate_logs(self, step: int) -> None:
        """On resume: drop log lines written after the checkpoint's step (they will be redone)."""
        for name in ("metrics.jsonl", "alphas.jsonl"):
            p = self.file(name)
            if p.exists():
                keep = [l for l in p.read_text().splitlines() if l and json.loads(l).get("step", 0) <= step]
                p.write_text("".join(l + "\n" for l in keep))

    def save_checkpoint(self, state: dict) -> None:
        atomic_write_bytes(self.checkpoint_path, lambda f: torch.save(state, f))

    @property
    def best_path(self) -> Path:
        """Weights of the best validation score so far: {"model", "step", "metric", "val"} (what export takes)."""
        return self.path / "checkpoints" / "best.pt"

    def save_best(self, model_state: dict, step: int, val: dict, metric: str = "acc") -> None:
        """Keep the weights of a new best validation score (`metric`: the task's headline metric)."""
        atomic_write_bytes(self.best_path, lambda f: torch.save({"model": model_state, "step": step, "metric": metric,
                                                                 "val": dict(val)}, f))

    def load_checkpoint(self) -> dict:
        return torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)

    def write_json(self, name: str, data: dict) -> Path:
        p = self.file(name)
        atomic_write_bytes(p, lambda f: f.write(json.dumps(_clean(data), indent=1).encode()))
        return p


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]
