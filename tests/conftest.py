"""Shared fixtures: tiny specs written to tmp_path."""
from __future__ import annotations

import textwrap

import pytest
import torch

torch.set_num_threads(1)  # pytest-xdist runs 2 workers on 2 cores


def pytest_collection_modifyitems(config, items):
    """Tests marked `cuda` skip, with the reason, where torch sees no GPU."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason=f"needs a CUDA GPU; torch {torch.__version__} sees none")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


TINY = """
name: tiny
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model:
  d_model: 16
  n_heads: 2
  n_layers: 2
  ffn: {mult: 2}
  attention:
    granularity: %(granularity)s
    candidates: [softmax, linear, {local: {window: 4}}]
search: {strategy: %(strategy)s, seeds: [0], steps: 6, score_batches: 1%(extra)s}
train: {steps: 6, batch_size: 16, eval_every: 3, checkpoint_every: 3, lr: 3.0e-3}
"""


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name="spec.yaml") -> path of a spec file in tmp_path."""

    def write(text: str, name: str = "spec.yaml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def tiny_spec(write_spec):
    """tiny_spec(granularity="layer", strategy="darts", extra="") -> a fast searchable spec."""

    def make(granularity: str = "layer", strategy: str = "darts", extra: str = "", name: str = "spec.yaml"):
        return write_spec(TINY % {"granularity": granularity, "strategy": strategy, "extra": extra}, name)

    return make


@pytest.fixture(scope="session")
def deployed(tmp_path_factory):
    """(spec, run folder, model.onnx) of a trained, exported per-head tiny model, shared by the deploy tests."""
    from deploy_helpers import train_and_export

    return train_and_export(tmp_path_factory.mktemp("deploy"))
