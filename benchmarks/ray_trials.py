"""Brute-force baselines (every homogeneous candidate x seeds) as trials: in-process vs Ray Tune.

The fidelity suite's baseline set (benchmarks/fidelity_tasks.py, --quick size by default) as one
batch of independent trials (`ctx.run_trials`), once per backend, in two fresh run folders. Reports
the wall-clock of each (Ray's including its start-up, which is also given alone), the ratio, the
summed per-trial training seconds, and whether both backends gave the same records (scores).

`--kill`: a tiny halving search on Ray is killed with SIGKILL once two trials have finished, then
resumed on Ray; reports which trials each Ray batch ran, the Ray processes left 15 s after the kill,
and the differences (checkpoint tensors, metrics.jsonl, search.json) from an uninterrupted
in-process run (benchmarks/kill_resume.py's comparison).

    nice -n 10 env OMP_WAIT_POLICY=PASSIVE python benchmarks/ray_trials.py [--task listops --workers 2 --steps N]
    nice -n 10 env OMP_WAIT_POLICY=PASSIVE python benchmarks/ray_trials.py --kill
Writes benchmarks/out/ray_trials.{md,json} (--kill: ray_kill_resume.json).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from fidelity_tasks import CANDIDATES, FULL, QUICK, spec_template
from kill_resume import _cli, _env, differences, run_to_end
from nasgraph.backends import open_backend
from nasgraph.search.run import search_context
from nasgraph.search.trials import TrialRequest, trial_name
from nasgraph.spec import load_spec

OUT = Path(__file__).parent / "out"


def baselines(task: str, regime: dict, seeds: list[int], backend: str, workers: int | None, folder: Path) -> dict:
    """Wall-clock of the baseline batch on `backend` in run folder `folder`, and its records."""
    spec = {**spec_template(task, regime, folder / "data"),
            "search": {"strategy": "halving", "seeds": seeds, "score_batches": None}}
    spec["model"]["attention"] = {"candidates": CANDIDATES}
    (folder / "spec.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ctx = search_context(load_spec(folder / "spec.yaml"), folder / "run", resume=False, progress=False)
    steps = spec["train"]["steps"]
    requests = [TrialRequest(c, s, steps, trial_name(ctx, c, s))
                for c in map(ctx.homogeneous, ctx.homogeneous_labels()) for s in seeds]
    t0, load0 = time.perf_counter(), os.getloadavg()[0]
    with open_backend(backend, workers if backend == "ray" else None) as ctx.backend:
        started = time.perf_counter() - t0
        records = ctx.run_trials(requests, f"baselines {backend}")
    wall = time.perf_counter() - t0
    return {"backend": backend, "workers": workers if backend == "ray" else 1, "trials": len(requests),
            "wall_s": round(wall, 1), "startup_s": round(started, 1),
            "trial_seconds_sum": round(sum(r["seconds"] for r in records), 1),
            "load_avg": [round(load0, 1), round(os.getloadavg()[0], 1)],
            "scores": {r["name"]: r["score"] for r in records}}


def markdown(task: str, seeds: list[int], steps: int, rows: list[dict], same: bool) -> str:
    local, ray = rows
    lines = [f"# Brute-force baselines as trials: in-process vs Ray ({task}, seeds {seeds})", "",
             f"{local['trials']} trials (every homogeneous candidate x {len(seeds)} seeds, {task} at the fidelity "
             f"suite's size, {steps} steps each), one torch thread each; one run per backend on this machine "
             f"({os.cpu_count()} cores, shared).", "",
             "| backend | workers | wall s | start-up s | sum of trial training s | load avg (start, end) |",
             "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['backend']} | {r['workers']} | {r['wall_s']} | {r['startup_s']} | {r['trial_seconds_sum']} | "
              f"{r['load_avg'][0]}, {r['load_avg'][1]} |" for r in rows]
    lines += ["", f"Ray / in-process wall-clock: {ray['wall_s'] / local['wall_s']:.2f} "
              f"(below 1: Ray faster). Same scores on both backends: {same}."]
    return "\n".join(lines) + "\n"


KILL_SPEC = """
name: ray-kill
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model: {d_model: 16, n_heads: 2, n_layers: 2, ffn: {mult: 2}, attention: {candidates: [softmax, linear, local]}}
search: {strategy: halving, seeds: [0], steps: 400, score_batches: 1}
train: {steps: 400, batch_size: 16, eval_every: 50, checkpoint_every: 10, lr: 3.0e-3, threads: 1}
"""


def kill_resume(folder: Path, workers: int) -> dict:
    """SIGKILL a Ray-backed search after two finished trials, resume it on Ray, compare with in-process."""
    spec, full, cut = folder / "spec.yaml", folder / "full", folder / "cut"
    spec.write_text(KILL_SPEC)
    run_to_end("search", spec, full)
    ray_args = ["--backend", "ray", "--workers", str(workers)]
    proc = subprocess.Popen(_cli("search", spec, cut, False) + ray_args, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while len(list(cut.glob("trials/*/budget*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.5)
    done_at_kill = sorted(p.parent.name for p in cut.glob("trials/*/budget*.json"))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(15)
    ps = subprocess.run(["ps", "-eo", "pid,ppid,cmd"], capture_output=True, text=True).stdout.splitlines()
    left = [line.strip()[:80] for line in ps if any(k in line for k in ("ray::", "raylet", "gcs_server"))]
    proc = subprocess.run(_cli("search", spec, cut, True) + ray_args, env=_env(), capture_output=True, text=True)
    batches = {b.name: sorted(t.name for t in b.iterdir() if t.is_dir()) for b in sorted((cut / "ray").iterdir())}
    return {"finished_at_kill": done_at_kill, "ray_processes_15s_after_kill": left, "resume_exit": proc.returncode,
            "ray_batches": batches, "differences_from_in_process": differences(full, cut)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="listops", choices=sorted(QUICK))
    p.add_argument("--full", action="store_true", help="the fidelity suite's full size (hours on 2 cores)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, help="train.steps of each trial (default: the regime's)")
    p.add_argument("--kill", action="store_true", help="SIGKILL a Ray-backed search, resume, compare (see above)")
    args = p.parse_args()
    if args.kill:
        with tempfile.TemporaryDirectory() as tmp:
            result = kill_resume(Path(tmp), args.workers)
        OUT.mkdir(exist_ok=True)
        (OUT / "ray_kill_resume.json").write_text(json.dumps(result, indent=1))
        print(json.dumps(result, indent=1))
        return
    regime = (FULL if args.full else QUICK)[args.task]
    if args.steps:
        regime = {**regime, "train": {**regime["train"], "steps": args.steps}}
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for backend in ("in-process", "ray"):
            (Path(tmp) / backend).mkdir()
            rows.append(baselines(args.task, regime, args.seeds, backend, args.workers, Path(tmp) / backend))
            print(json.dumps({k: v for k, v in rows[-1].items() if k != "scores"}), flush=True)
    same = rows[0]["scores"] == rows[1]["scores"]
    OUT.mkdir(exist_ok=True)
    (OUT / "ray_trials.json").write_text(json.dumps({"task": args.task, "seeds": args.seeds,
                                                      "steps": regime["train"]["steps"], "rows": rows,
                                                      "same_scores": same}, indent=1))
    steps = regime["train"]["steps"]
    (OUT / "ray_trials.md").write_text(markdown(args.task, args.seeds, steps, rows, same))
    print(markdown(args.task, args.seeds, steps, rows, same))


if __name__ == "__main__":
    main()
