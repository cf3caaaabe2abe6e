"""kill -9 at random points, then `--resume`: does the run end with the state and logs of an
uninterrupted one?

    .venv/bin/python benchmarks/kill_resume.py [--kills 10 --command train|search --seed 0]

One uninterrupted run, then one run killed `--kills` times (SIGKILL at a random moment once the
process has started training) and resumed after each kill. Compared at the end: every tensor of the
last checkpoint (model, optimizers, strategy, RNGs), metrics.jsonl and alphas.jsonl row by row, and
result.json / search.json (wall-clock `seconds` fields left out). Also counted: kills that landed
inside a checkpoint write (a `.last.pt.tmp` present right after the kill) and temporary files left
after the final resume. Writes benchmarks/out/kill_resume.{md,json}. The test suite runs
`kill_loop` with 3 kills.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(__file__).parent / "out"

SPEC = """
name: kill-resume
task: {kind: tiny, max_len: 12, n_train: 512, n_val: 64, n_test: 64}
model:
  d_model: %(d)d
  n_heads: 2
  n_layers: 2
  dropout: 0.1
  ffn: {mult: 2}
  attention: %(attention)s
search: {strategy: gdas, seeds: [0, 1], steps: %(steps)d, score_batches: 1}
train: {steps: %(steps)d, batch_size: 16, eval_every: 40, checkpoint_every: 7, lr: 3.0e-3, threads: 1}
"""


def write_spec(folder: Path, command: str, steps: int = 240, d_model: int = 32) -> Path:
    attention = "{candidates: [softmax, linear, {local: {window: 4}}]}" if command == "search" else "softmax"
    path = folder / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC % {"d": d_model, "attention": attention, "steps": steps}))
    return path


def _cli(command: str, spec: Path, out: Path, resume: bool) -> list[str]:
    return [sys.executable, "-m", "nasgraph", command, str(spec), "--out", str(out), "--no-progress",
            *(["--resume"] if resume else [])]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


def run_to_end(command: str, spec: Path, out: Path, resume: bool = False) -> None:
    proc = subprocess.run(_cli(command, spec, out, resume), env=_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or "Traceback" in proc.stderr:
        raise RuntimeError(f"{command} {'--resume ' if resume else ''}exit {proc.returncode}: {proc.stderr[-2000:]}")


def _wrote_since(out: Path, t: float) -> bool:
    """Whether the run wrote a file after time `t` (so it is past its imports and set-up)."""
    for p in out.rglob("*") if out.is_dir() else ():
        try:
            if p.is_file() and p.stat().st_mtime > t:
                return True
        except OSError:   # replaced while we looked
            continue
    return False


def kill_once(command: str, spec: Path, out: Path, rng: random.Random, window_s: float) -> dict:
    """Start (or resume) the run, SIGKILL it at a random moment after training began; what the kill hit."""
    resume, t0 = out.exists(), time.time()
    proc = subprocess.Popen(_cli(command, spec, out, resume), env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not _wrote_since(out, t0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(rng.uniform(0, window_s))
    finished = proc.poll() is not None
    if not finished:
        os.kill(proc.pid, signal.SIGKILL)
    err = proc.communicate()[1]
    if finished and (proc.returncode != 0 or "Traceback" in err):
        raise RuntimeError(f"run ended with exit {proc.returncode} before the kill: {err[-2000:]}")
    return {"killed": not finished, "mid_checkpoint_write": any(out.glob("**/checkpoints/.last.pt.tmp"))}


def _without_seconds(v):
    if isinstance(v, dict):
        return {k: _without_seconds(x) for k, x in v.items() if k != "seconds"}
    if isinstance(v, list):
        return [_without_seconds(x) for x in v]
    return v


def _tensors_equal(a, b, path="") -> list[str]:
    import torch

    if isinstance(a, torch.Tensor):
        return [] if isinstance(b, torch.Tensor) and a.shape == b.shape and torch.equal(a, b) else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return [f"{path} keys"]
        return [d for k in a for d in _tensors_equal(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _tensors_equal(x, y, f"{path}[{i}]")]
    return [] if a == b else [path]


def differences(full: Path, cut: Path) -> list[str]:
    """What differs between two finished run folders (empty: the same state and logs)."""
    from nasgraph.training.checkpoint import read_state
    from nasgraph.training.rundir import read_jsonl

    diffs = []
    for ckpt in sorted(full.glob("**/checkpoints/last.pt")):
        rel = ckpt.relative_to(full)
        diffs += [f"{rel}: {d}" for d in _tensors_equal(read_state(ckpt), read_state(cut / rel))]
    for log in sorted([*full.glob("**/metrics.jsonl"), *full.glob("**/alphas.jsonl")]):
        rel = log.relative_to(full)
        a, b = _without_seconds(read_jsonl(log)), _without_seconds(read_jsonl(cut / rel))
        if a != b:
            diffs.append(f"{rel}: {len(a)} rows uninterrupted vs {len(b)} after kills")
    for name in ("result.json", "search.json", "seed0/result.json", "seed1/result.json"):
        if (full / name).exists():
            a, b = (_without_seconds(json.loads((p / name).read_text())) for p in (full, cut))
            if a != b:
                diffs.append(f"{name} differs")
    return diffs


def kill_loop(folder: Path, command: str = "train", kills: int = 10, seed: int = 0, steps: int = 240,
              d_model: int = 32, window_s: float = 1.5) -> dict:
    """The whole experiment in `folder`; returns the counts and the differences found."""
    spec = write_spec(folder, command, steps, d_model)
    full, cut = folder / "full", folder / "cut"
    t0 = time.perf_counter()
    run_to_end(command, spec, full)
    uninterrupted_s = time.perf_counter() - t0
    rng = random.Random(seed)
    hits = [kill_once(command, spec, cut, rng, min(window_s, uninterrupted_s)) for _ in range(kills)]
    run_to_end(command, spec, cut, resume=True)
    leftovers = [str(p.relative_to(cut)) for p in cut.glob("**/.*.tmp")]
    rows = lambda p: sum(len(f.read_text().splitlines()) for f in p.glob("**/metrics.jsonl"))  # noqa: E731
    return {"command": command, "kills": kills, "landed": sum(h["killed"] for h in hits),
            "mid_checkpoint_write": sum(h["mid_checkpoint_write"] for h in hits),
            "uninterrupted_s": round(uninterrupted_s, 1), "metrics_rows": [rows(full), rows(cut)],
            "temp_files_left": leftovers, "differences": differences(full, cut)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--command", choices=("train", "search"), nargs="+", default=["train", "search"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=240)
    p.add_argument("--d-model", type=int, default=32)
    args = p.parse_args()
    results = []
    for command in args.command:
        with tempfile.TemporaryDirectory(prefix="kill-resume-") as tmp:
            r = kill_loop(Path(tmp), command, args.kills, args.seed, args.steps, args.d_model)
        results.append(r)
        print(json.dumps(r))
    OUT.mkdir(exist_ok=True)
    (OUT / "kill_resume.json").write_text(json.dumps(results, indent=1))
    lines = ["| command | kills landed | mid checkpoint write | metrics rows (full / killed) | temp files left | "
             "differences |", "|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['command']} | {r['landed']}/{r['kills']} | {r['mid_checkpoint_write']} | "
                     f"{r['metrics_rows'][0]} / {r['metrics_rows'][1]} | {len(r['temp_files_left'])} | "
                     f"{'; '.join(r['differences']) or 'none'} |")
    (OUT / "kill_resume.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if all(not r["differences"] and not r["temp_files_left"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
