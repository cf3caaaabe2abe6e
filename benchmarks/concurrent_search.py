"""Two `nasgraph search` runs at once on the same cores: how much slower is each than one alone?

Issue 8: while another nasgraph run was active on the same 2 cores, a search stepped at 3.7 s per
step instead of 0.14 s (OpenMP threads spin-waiting). The CLI now sets OMP_WAIT_POLICY=PASSIVE and
OMP_NUM_THREADS (cores available) unless the user set them. Target: each of two concurrent searches
at most 2.5x slower than one alone.

The figure is the training time of each search (seed0/result.json "seconds", the fit loop without
process start-up), alone and then two at once; alone runs before and after the pair, and the ratio
uses their mean. `--policy ACTIVE` reproduces the spinning default for comparison.

    python benchmarks/concurrent_search.py                 # CLI defaults (passive waiting)
    python benchmarks/concurrent_search.py --policy ACTIVE # libgomp spinning, as before
    python benchmarks/concurrent_search.py --cpus 0,1      # pin both runs to two cores (taskset)
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPEC = """
name: concurrent
task: {kind: tiny, max_len: 64, n_train: 4096, n_val: 256, n_test: 256}
model:
  d_model: 64
  n_heads: 4
  n_layers: 2
  attention: {candidates: [softmax, linear, {local: {window: 8}}]}
search: {strategy: darts, seeds: [0], steps: %(steps)d, score_batches: 2}
train: {steps: %(steps)d, batch_size: 32, eval_every: 100000, checkpoint_every: 100000}
"""


LAUNCHED: list[subprocess.Popen] = []


def launch(spec: Path, out: Path, env: dict, cpus: str | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "nasgraph", "search", str(spec), "--out", str(out), "--no-progress"]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    LAUNCHED.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    return LAUNCHED[-1]


def train_seconds(procs: list[tuple[subprocess.Popen, Path]]) -> list[float]:
    out = []
    for p, run in procs:
        _, err = p.communicate()
        if p.returncode:
            raise SystemExit(f"search in {run} failed (exit {p.returncode}):\n{err[-2000:]}")
        out.append(json.loads((run / "seed0" / "result.json").read_text())["final"]["seconds"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=150, help="search steps per run")
    ap.add_argument("--policy", choices=["default", "PASSIVE", "ACTIVE"], default="default",
                    help="OMP_WAIT_POLICY for the runs (default: leave it to the CLI, i.e. PASSIVE)")
    ap.add_argument("--cpus", help="taskset CPU list for every run, e.g. 0,1")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    if args.policy != "default":
        env["OMP_WAIT_POLICY"] = args.policy
    with tempfile.TemporaryDirectory(prefix="nasgraph-concurrent-") as tmp:
        tmp = Path(tmp)
        spec = tmp / "spec.yaml"
        spec.write_text(SPEC % {"steps": args.steps})
        t0 = time.perf_counter()
        before = train_seconds([(launch(spec, tmp / "alone1", env, args.cpus), tmp / "alone1")])[0]
        print(f"alone: {before:.1f} s", flush=True)
        pair = train_seconds([(launch(spec, tmp / f"pair{i}", env, args.cpus), tmp / f"pair{i}") for i in (0, 1)])
        print(f"two at once: {pair[0]:.1f} s, {pair[1]:.1f} s", flush=True)
        after = train_seconds([(launch(spec, tmp / "alone2", env, args.cpus), tmp / "alone2")])[0]
        print(f"alone again: {after:.1f} s", flush=True)
    alone = (before + after) / 2
    ratio = max(pair) / alone
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(json.dumps({"policy": env.get("OMP_WAIT_POLICY", "(CLI default: PASSIVE)"), "cpus": args.cpus,
                      "steps": args.steps, "alone_s": [before, after], "concurrent_s": pair,
                      "slowdown_each": [round(p / alone, 2) for p in pair], "wall_s": round(time.perf_counter() - t0, 1),
                      "load_avg_1min": load}, indent=1))
    print(f"two concurrent searches: each at most {ratio:.2f}x slower than one alone "
          f"(target <= 2.5x: {'met' if ratio <= 2.5 else 'NOT met'})")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # `timeout` ends us: end our searches too
    try:
        main()
    finally:
        for p in LAUNCHED:
            if p.poll() is None:
                p.kill()
