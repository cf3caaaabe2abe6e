"""Data-parallel search under torchrun (gloo, CPU): the ranks stay identical and equal one process.

The 2-rank runs start their own processes with `python -m torch.distributed.run` (no torchrun script
needed on PATH) and a collective timeout, so a hang fails the test instead of stalling CI.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nasgraph import distributed

ROOT = Path(__file__).resolve().parent.parent


def run(argv: list, tmp_path: Path, ranks: int = 1, dump: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", distributed.TIMEOUT_ENV: "120",
           **({"NASGRAPH_DEBUG_RANK_DIR": str(dump)} if dump else {})}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [sys.executable, "-m", "nasgraph"] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
         "-m", "nasgraph"]
    return subprocess.run([*launcher, *map(str, argv)], env=env, capture_output=True, text=True, timeout=420,
                          cwd=tmp_path)


def probs(out: Path) -> list[float]:
    per_seed = json.loads((out / "search.json").read_text())["per_seed"]
    return [v for r in per_seed for node in sorted(r["probs"]) for row in r["probs"][node] for v in row]


def body(path: Path) -> str:
    """A derived spec without its header comment (which names the run folder)."""
    return "".join(l for l in path.read_text().splitlines(True) if not l.startswith("#"))


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["darts", "gdas"])
def test_two_gloo_ranks_stay_identical_and_derive_what_one_process_derives(strategy, tiny_spec, tmp_path):
    spec = tiny_spec(strategy=strategy)
    one = run(["search", spec, "--out", tmp_path / "one", "--no-progress", "--device", "cpu"], tmp_path)
    assert one.returncode == 0, one.stderr[-2000:]
    two = run(["search", spec, "--out", tmp_path / "two", "--no-progress", "--device", "cpu"], tmp_path, ranks=2,
              dump=tmp_path / "dump")
    assert two.returncode == 0, two.stderr[-3000:]
    alphas = [json.loads((tmp_path / "dump" / f"seed0-alphas-rank{r}.json").read_text()) for r in (0, 1)]
    assert alphas[0] == alphas[1] and alphas[0]                         # bit-identical on both ranks
    assert probs(tmp_path / "two") == pytest.approx(probs(tmp_path / "one"), abs=1e-5)
    assert body(tmp_path / "two" / "derived.yaml") == body(tmp_path / "one" / "derived.yaml")
    assert two.stdout.count("wrote ") == 1                             # rank 0 alone reports
    assert not list((tmp_path / "two").rglob("*rank1*"))


@pytest.mark.slow
def test_two_ranks_refuse_a_global_batch_they_cannot_split(tiny_spec, tmp_path):
    spec = tiny_spec()
    two = run(["search", spec, "--out", tmp_path / "two", "--no-progress", "--set", "train.batch_size=15"], tmp_path,
              ranks=2)
    assert two.returncode != 0
    assert "train.batch_size: 15 is the global batch, split over the 2 torchrun ranks" in two.stderr
    assert not (tmp_path / "two").exists()


# -- the pieces, in one process ------------------------------------------------------------------------
def test_outside_torchrun_everything_is_a_world_of_one():
    tokens, labels = torch.zeros(5, 3, dtype=torch.long), torch.arange(5)
    assert distributed.shard((tokens, labels), len) == ((tokens, labels), 1.0)
    assert distributed.world_size() == 1 and distributed.is_writer()
    assert distributed.all_reduce_mean([torch.ones(2)])[0].tolist() == [1.0, 1.0]
    assert distributed.from_rank0(lambda: 7) == 7


@pytest.mark.parametrize("n,world", [(8, 2), (9, 2), (2, 3)])
def test_shard_weights_make_the_mean_of_rank_means_the_global_mean(n, world, monkeypatch):
    """Uneven shards (a short last batch) and a rank left without examples still average to the global mean."""
    losses, labels = torch.rand(n), torch.arange(n)
    monkeypatch.setattr(distributed, "active", lambda: True)
    monkeypatch.setattr(distributed, "world_size", lambda: world)
    total, seen = 0.0, []
    for r in range(world):
        monkeypatch.setattr(distributed, "rank", lambda r=r: r)
        (_, mine), weight = distributed.shard((labels[:, None], labels), len)
        total += weight * losses[mine].mean().item()
        seen += mine.tolist() if weight else []
    assert sorted(seen) == list(range(n))                               # each example on exactly one rank
    assert total / world == pytest.approx(losses.mean().item(), rel=1e-6)
