"""Two measurements for the README's "Devices and data-parallel search":

1. The same darts search as one process and as `torchrun --nproc_per_node 2` (gloo, CPU): wall-clock
   of the whole command and the training time of the search (seed0/result.json "seconds", the fit
   loop without process start-up), and whether both derive the same spec.
2. CPU step time of train.precision bf16 vs fp32 on the same model (result.json "seconds" over the
   same steps, alternating runs: fp32, bf16, fp32, bf16).

    python benchmarks/devices_ddp.py --steps 80 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEARCH = """
name: ddp-bench
task: {kind: tiny, max_len: 64, n_train: 4096, n_val: 256, n_test: 256}
model:
  d_model: 64
  n_heads: 4
  n_layers: 2
  attention: {candidates: [softmax, linear, {local: {window: 8}}]}
search: {strategy: darts, seeds: [0], steps: %(steps)d, score_batches: 2}
train: {steps: %(steps)d, batch_size: 32, eval_every: 100000, checkpoint_every: 100000, device: cpu}
"""
TRAIN = """
name: precision-bench
task: {kind: tiny, max_len: 128, n_train: 4096, n_val: 128, n_test: 128}
model: {d_model: %(d)d, n_heads: 4, n_layers: 2, attention: softmax}
train: {steps: %(steps)d, batch_size: 32, eval_every: 100000, checkpoint_every: 100000, device: cpu}
"""


def command(argv: list[str], ranks: int, env: dict) -> float:
    launcher = [sys.executable, "-m", "nasgraph"] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), "-m", "nasgraph"]
    t0 = time.perf_counter()
    subprocess.run([*launcher, *argv], env=env, check=True, capture_output=True, timeout=3600)
    return time.perf_counter() - t0


def body(path: Path) -> str:
    return "".join(l for l in path.read_text().splitlines(True) if not l.startswith("#"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=80)
    ap.add_argument("--train-steps", type=int, default=40)
    ap.add_argument("--d-model", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=2, help="fp32/bf16 pairs")
    args = ap.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(PYTHONPATH=str(ROOT))
    out: dict = {"load_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="nasgraph-ddp-bench-") as tmp:
        tmp = Path(tmp)
        spec = tmp / "search.yaml"
        spec.write_text(SEARCH % {"steps": args.steps})
        for ranks in (1, 2):
            run = tmp / f"r{ranks}"
            wall = command(["search", str(spec), "--out", str(run), "--no-progress"], ranks, env)
            fit = json.loads((run / "seed0" / "result.json").read_text())["final"]["seconds"]
            out[f"search_{ranks}_rank"] = {"wall_s": round(wall, 1), "train_s": fit}
        out["same_derived"] = body(tmp / "r1" / "derived.yaml") == body(tmp / "r2" / "derived.yaml")
        out["ratio_wall_2_over_1"] = round(out["search_2_rank"]["wall_s"] / out["search_1_rank"]["wall_s"], 3)
        out["ratio_train_2_over_1"] = round(out["search_2_rank"]["train_s"] / out["search_1_rank"]["train_s"], 3)
        tspec = tmp / "train.yaml"
        tspec.write_text(TRAIN % {"steps": args.train_steps, "d": args.d_model})
        times: dict[str, list[float]] = {"fp32": [], "bf16": []}
        for i in range(args.repeats):
            for precision in times:
                run = tmp / f"t-{precision}-{i}"
                command(["train", str(tspec), "--out", str(run), "--no-progress", "--set",
                         f"train.precision={precision}"], 1, env)
                times[precision].append(json.loads((run / "result.json").read_text())["seconds"])
        out["train_seconds"] = times
        out["ratio_bf16_over_fp32"] = round(sum(times["bf16"]) / sum(times["fp32"]), 3)
    out["load_after"] = os.getloadavg()
    out["cores"] = os.cpu_count()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
