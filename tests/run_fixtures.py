"""Shared by the run-safety tests: a tiny train spec and one finished run to copy from."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from nasgraph.cli import main


def cli(argv) -> int:
    return main([str(a) for a in argv])


TRAIN = """
name: tiny-train
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model: {d_model: 16, n_heads: 2, n_layers: 1, dropout: 0.1, ffn: {mult: 2}, attention: softmax}
train: {steps: 8, batch_size: 16, eval_every: 4, checkpoint_every: 3, lr: 3.0e-3}
"""


@pytest.fixture
def train_spec(write_spec):
    return write_spec(TRAIN, "train.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(spec, finished train run) shared by the read-only tests."""
    root = tmp_path_factory.mktemp("trained")
    spec = root / "train.yaml"
    spec.write_text(textwrap.dedent(TRAIN))
    assert cli(["train", str(spec), "--out", str(root / "run"), "--no-progress"]) == 0
    return spec, root / "run"


def copy_run(run: Path, dst: Path) -> Path:
    return Path(shutil.copytree(run, dst))
