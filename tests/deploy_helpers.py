"""Shared by the deploy tests: the tiny specs, and real validation batches of the tiny task."""
from __future__ import annotations

import textwrap
from pathlib import Path

import torch
import yaml

from nasgraph.cli import main

TASK = "task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}"
HETERO = f"""
name: tiny-hetero
{TASK}
model:
  d_model: 16
  n_heads: 2
  n_layers: 2
  ffn: {{mult: 2}}
  layers:
    - attention: {{heads: [softmax, {{local: {{window: 4}}}}]}}
    - attention: linear
train: {{steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}}
"""
CHOICE = f"""
name: tiny-choice
{TASK}
model:
  d_model: 16
  n_heads: 2
  n_layers: 1
  ffn: {{mult: 2}}
  attention: {{granularity: head, candidates: [softmax, linear]}}
search: {{strategy: darts, seeds: [0], steps: 4, objective: {{latency: {{weight: 1.0}}}}}}
train: {{steps: 4, batch_size: 16, eval_every: 4, checkpoint_every: 4}}
"""
ONE_LAYER = f"""
name: one-layer
{TASK}
model: {{d_model: 8, n_heads: 1, n_layers: 1, ffn: {{mult: 1}}, attention: softmax}}
"""



def train_and_export(root: Path) -> tuple[Path, Path, Path]:
    """(spec, run folder, model.onnx) of a trained per-head (heterogeneous) derived model under `root`."""
    spec = root / "derived.yaml"
    spec.write_text(textwrap.dedent(HETERO))
    run = root / "run"
    assert main(["train", str(spec), "--out", str(run), "--no-progress"]) == 0
    onnx_path = root / "model.onnx"
    assert main(["export", str(run), "-o", str(onnx_path)]) == 0
    return spec, run, onnx_path


def val_batch(B: int, T: int) -> torch.Tensor:
    """Real validation examples of the tiny task, padded to T (B, T)."""
    from nasgraph import tasks

    split = tasks.load_task(tasks.parse_task(yaml.safe_load(TASK)["task"])).splits["val"]
    rows = [ids[:T] + [0] * (T - len(ids[:T])) for ids in split.ids[:B]]
    return torch.tensor(rows)


def unpadded_batch(B: int, T: int) -> torch.Tensor:
    """Real validation examples of at least T tokens, cut to T: a batch without padding (B, T)."""
    from nasgraph import tasks

    split = tasks.load_task(tasks.parse_task(yaml.safe_load(TASK)["task"])).splits["val"]
    rows = [ids[:T] for ids in split.ids if len(ids) >= T][:B]
    assert len(rows) == B, f"the tiny task has fewer than {B} validation examples of {T} tokens"
    return torch.tensor(rows)

