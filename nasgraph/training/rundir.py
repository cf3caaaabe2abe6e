"""A run directory: ownership marker, spec snapshot, metrics.jsonl, alphas.jsonl, checkpoints, result.json."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import yaml

from nasgraph import distributed
from nasgraph.errors import NasgraphError
from nasgraph.outfile import atomic_write
from nasgraph.runfolder import claim
from nasgraph.training.checkpoint import Checkpoints

LOGS = ("metrics.jsonl", "alphas.jsonl")
MOVABLE = ("train.device",)   # a resumed run may change these: where it computes, not what


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def spec_differences(old: Any, new: Any, path: str = "") -> list[str]:
    """Key paths where two raw specs differ ("train.steps: 1000 -> 1200", "model.layers[1].attention")."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in list(old) + [k for k in new if k not in old]:
            sub = f"{path}.{k}" if path else str(k)
            if k not in new:
                out.append(f"{sub} (only in the run)")
            elif k not in old:
                out.append(f"{sub} (only in the new spec)")
            else:
                out += spec_differences(old[k], new[k], sub)
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return [d for i, (a, b) in enumerate(zip(old, new)) for d in spec_differences(a, b, f"{path}[{i}]")]
    if old != new or isinstance(old, bool) != isinstance(new, bool):
        shown = lambda v: repr(v) if len(repr(v)) <= 40 else type(v).__name__  # noqa: E731
        return [f"{path or '(whole spec)'}: {shown(old)} -> {shown(new)}"]
    return []


class RunDir:
    """One run's folder.

    `kind` ("train", "search") claims the folder (nasgraph.runfolder): a folder of another kind, a
    non-empty folder that is no run, or (without `resume`) a used run folder is refused before
    anything is written. `kind=None` is a sub-run inside a claimed folder (a search seed).
    `resuming` tells whether there is a checkpoint to continue from.

    Under torchrun only rank 0 writes (`nasgraph.distributed.is_writer`); the constructor,
    `write_spec`, `write_json` and `save_checkpoint` are collective (every rank calls them at the
    same point: a barrier, rank 0 acts, a barrier), so a file one rank reads to decide what to do
    next reads the same on every rank. Logs and best.pt are rank 0's alone (no rank reads them back).
    """

    def __init__(self, path: str | Path, *, kind: str | None = None, resume: bool = False):
        self.path = Path(path)
        with distributed.rank0_writes():
            if distributed.is_writer():
                if kind is not None:
                    claim(self.path, kind, resume=resume)
                elif resume and not self.path.is_dir():
                    raise NasgraphError(f"{self.path}: nothing to resume (no such run folder)")
                self.path.mkdir(parents=True, exist_ok=True)
                for stale in self.path.glob(".*.tmp"):   # left by a kill during an atomic write
                    stale.unlink(missing_ok=True)
        self.checkpoints = Checkpoints(self.path / "checkpoints", clean=distributed.is_writer())
        self.checkpoint_path = self.checkpoints.last
        self.resuming = resume and self.checkpoints.exists()

    @staticmethod
    def finished(path: str | Path) -> dict | None:
        """The run's result.json when it completed, else None."""
        p = Path(path) / "result.json"
        return read_json(p) if p.exists() else None

    def file(self, name: str) -> Path:
        return self.path / name

    def write_spec(self, raw: dict, name: str = "spec.yaml") -> Path:
        p = self.file(name)
        with distributed.rank0_writes():
            if distributed.is_writer():
                atomic_write(p, lambda f: f.write(yaml.safe_dump(raw, sort_keys=False,
                                                                        allow_unicode=True).encode()))
        return p

    def snapshot_spec(self, raw: dict, *, resume: bool, extend: tuple[str, ...] = (), hint: str = "") -> list[str]:
        """Write the spec snapshot of a fresh run; on resume compare with it first.

        The requested spec (after --set) must equal the snapshot, except the dotted keys in `extend`;
        returns those that differ (the caller rewrites the snapshot once it accepts them); MOVABLE keys
        may always differ. Any other
        difference: NasgraphError naming the keys, the snapshot untouched.
        """
        p = self.file("spec.yaml")
        if not (resume and p.exists()):
            self.write_spec(raw)
            return []
        try:
            old = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise NasgraphError(f"{p}: damaged spec snapshot ({type(err).__name__}); cannot check the resumed "
                                f"spec against it") from None
        diffs = spec_differences(old, raw)
        allowed = [d for d in diffs if d.split(":")[0].split(" (")[0] in tuple(extend) + MOVABLE]
        others = [d for d in diffs if d not in allowed]
        if others:
            raise NasgraphError(f"{self.path}: the spec differs from the run's snapshot {p.name} in "
                                f"{len(others)} key(s): {'; '.join(others[:4])}{' ...' if len(others) > 4 else ''}; "
                                f"--resume continues the same spec{hint} (nothing was changed)")
        return allowed

    def log(self, name: str, record: dict) -> None:
        if not distributed.is_writer():
            return
        with open(self.file(name), "a", encoding="utf-8") as f:
            f.write(json.dumps(_clean(record)) + "\n")

    def truncate_logs(self, step: int) -> None:
        """On resume: keep log lines up to the checkpoint's step (later ones will be redone).

        A torn last line (a kill mid-write) is dropped; a damaged line elsewhere is an error.
        """
        if not distributed.is_writer():
            return
        for name in LOGS:
            p = self.file(name)
            if not p.exists():
                continue
            text = "".join(json.dumps(r) + "\n" for r in read_jsonl(p, torn_ok=True) if r.get("step", 0) <= step)
            if text.encode() != p.read_bytes():
                atomic_write(p, lambda f: f.write(text.encode()))

    def save_checkpoint(self, state: dict) -> None:
        with distributed.rank0_writes():
            if distributed.is_writer():
                self.checkpoints.save(state)

    @property
    def best_path(self) -> Path:
        """Weights of the best validation score so far: {"model", "step", "metric", "val"} (what export takes)."""
        return self.path / "checkpoints" / "best.pt"

    def save_best(self, model_state: dict, step: int, val: dict, metric: str = "acc") -> None:
        """Keep the weights of a new best validation score (`metric`: the task's headline metric);
        plain data only, so it loads with weights_only=True."""
        import torch

        if not distributed.is_writer():
            return
        atomic_write(self.best_path, lambda f: torch.save({"model": model_state, "step": step, "metric": metric,
                                                                 "val": dict(val)}, f))

    def load_checkpoint(self) -> dict:
        with distributed.rank0_first():   # rank 0 may set a damaged last.pt aside; the others then read the same
            state = self.checkpoints.load()
        if state is None:
            raise NasgraphError(f"{self.checkpoints.folder}: no checkpoint to resume from")
        return state

    def write_json(self, name: str, data: dict) -> Path:
        p = self.file(name)
        with distributed.rank0_writes():
            if distributed.is_writer():
                atomic_write(p, lambda f: f.write(json.dumps(_clean(data), indent=1).encode()))
        return p


def read_json(path: Path, what: str = "") -> Any:
    """A JSON file a run wrote; damage is a NasgraphError naming the file."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NasgraphError(f"{path}: missing{f' ({what})' if what else ''}") from None
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise NasgraphError(f"{path}: damaged JSON ({type(err).__name__}: {str(err).splitlines()[0][:100]})"
                            f"{f'; {what}' if what else ''}") from None


def read_jsonl(path: Path, torn_ok: bool = True) -> list[dict]:
    """The records of a .jsonl log. A torn last line (kill -9 mid-write) is skipped with a warning
    when `torn_ok`; any other bad line is a NasgraphError naming the file and line."""
    if not path.exists():
        return []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise NasgraphError(f"{path}: unreadable log ({type(err).__name__})") from None
    rows = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            row = None
        if not isinstance(row, dict):
            if torn_ok and i == len(lines):
                print(f"nasgraph: warning: {path}:{i}: torn last line skipped (a run killed mid-write)",
                      file=sys.stderr)
                continue
            raise NasgraphError(f"{path}:{i}: damaged log line (not a JSON object)")
        rows.append(row)
    return rows
