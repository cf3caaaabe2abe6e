"""train.device / train.precision / --device: validation, resolution, bf16 on the CPU, checkpoints that
move between devices, and every attention type following the model's device. CUDA tests skip without a GPU."""
from __future__ import annotations

import json

import pytest
import torch

from nasgraph.cli import main
from nasgraph.errors import SpecError
from nasgraph.spec import load_spec
from nasgraph.training import device as dev

TRAIN = """
name: tiny-train
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model: {d_model: 16, n_heads: 2, n_layers: 1, ffn: {mult: 2}, attention: softmax}
train: {steps: %(steps)d, batch_size: 16, eval_every: 4, checkpoint_every: 3, lr: 3.0e-3%(extra)s}
"""
cuda = pytest.mark.cuda    # skipped with the reason without a GPU (conftest.py)


@pytest.fixture
def train_spec(write_spec):
    return lambda steps=8, extra="": write_spec(TRAIN % {"steps": steps, "extra": extra}, "train.yaml")


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    dev._say_cpu_fallback.cache_clear()


def cli(*argv) -> int:
    return main([str(a) for a in argv])


def rows(run, split="train") -> list[dict]:
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["split"] == split]


# -- validation and resolution ---------------------------------------------------------------------
@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:3"])
def test_device_names_that_load(name, train_spec):
    assert load_spec(train_spec(extra=f", device: '{name}'")).spec.train.device == name


@pytest.mark.parametrize("name", ["gpu", "cpu:0", "cuda:", "cuda:x", "CUDA", "mps"])
def test_a_bad_device_is_one_located_line_with_the_choices(name, train_spec):
    path = train_spec(extra=f", device: '{name}'")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert text.startswith(f"{path}:5:") and "train.device" in text and f"'{name}'" in text
    assert "auto, cpu, cuda, cuda:N" in text


def test_bad_device_option_exits_2_in_one_line(train_spec, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        cli("train", train_spec(), "--out", tmp_path / "run", "--device", "gpu")
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device" in err and "auto, cpu, cuda" in err
    assert not (tmp_path / "run").exists()


def test_auto_falls_back_to_the_cpu_and_says_so_when_training_starts(no_cuda, capsys):
    assert dev.resolve_device("auto") == torch.device("cpu")
    assert capsys.readouterr().err == ""                 # not yet: a refusal after this must stay one line
    dev.announce(torch.device("cpu"))
    assert "no CUDA device available; running on the CPU" in capsys.readouterr().err


def test_cuda_without_cuda_is_a_clear_error(no_cuda, train_spec, tmp_path, capsys):
    with pytest.raises(dev.DeviceError, match="CUDA is not available"):
        dev.resolve_device("cuda:0")
    assert cli("train", train_spec(extra=", device: cuda"), "--out", tmp_path / "run", "--no-progress") == 2
    err = capsys.readouterr().err
    assert "train.yaml:5:" in err and "train.device: cuda: CUDA is not available" in err
    assert cli("train", train_spec(), "--out", tmp_path / "run", "--device", "cuda") == 2
    assert "--device cuda: CUDA is not available" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_fp16_on_the_cpu_is_refused_at_the_precision_key(train_spec):
    doc = load_spec(train_spec(extra=", device: cpu, precision: fp16"))
    with pytest.raises(SpecError, match=r"train\.precision: fp16 needs a CUDA device .* use bf16 or fp32"):
        dev.runtime_train(doc)


def test_a_global_batch_the_ranks_cannot_split_is_refused(train_spec, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")     # as torchrun --nproc_per_node 3 sets it
    doc = load_spec(train_spec(extra=", device: cpu"))
    with pytest.raises(SpecError, match=r"train\.batch_size: 16 is the global batch.*multiple of 3"):
        dev.runtime_train(doc)


# -- training on the CPU at bf16 -------------------------------------------------------------------
def test_bf16_training_on_the_cpu_learns(train_spec, tmp_path):
    run = tmp_path / "run"
    assert cli("train", train_spec(steps=40, extra=", precision: bf16, device: cpu"), "--out", run, "--no-progress") == 0
    losses = [r["loss"] for r in rows(run)]
    assert losses[-1] < 0.7 * losses[0]
    assert json.loads((run / "result.json").read_text())["val"]["acc"] > 0.8


def test_bf16_runs_the_forward_in_bf16():
    from nasgraph.attention import registry

    layer = registry.build("softmax", 16, 2)
    with dev.autocast(torch.device("cpu"), "bf16"):
        assert layer(torch.randn(2, 5, 16)).dtype == torch.bfloat16
    with dev.autocast(torch.device("cpu"), "fp32"):
        assert layer(torch.randn(2, 5, 16)).dtype == torch.float32


def _attention_types():
    from nasgraph.attention import registry

    out = []
    for name in registry.names():
        caps = registry.get(name).caps
        out += [(name, False)] if caps.noncausal else []
        out += [(name, True)] if caps.causal else []
    return out


@pytest.mark.parametrize("name,causal", _attention_types())
def test_every_attention_type_follows_the_device_and_runs_bf16(name, causal):
    """On the meta device any tensor made on the CPU inside forward fails the op that meets it; under
    bf16 autocast the output stays near fp32's and gradients flow."""
    from nasgraph.attention import registry

    torch.manual_seed(0)
    layer = registry.build(name, 16, 2, causal=causal, max_len=12)
    x = torch.randn(2, 12, 16, requires_grad=True)                            # (B, T, D)
    mask = None if causal else torch.arange(12).expand(2, 12) < torch.tensor([[12], [9]])   # (B, T)
    ref = layer(x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer(x, mask)
    low.float().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert (low.float() - ref).abs().max() <= 0.05 * ref.abs().max()
    meta = registry.build(name, 16, 2, causal=causal, max_len=12).to("meta")
    out = meta(torch.empty(2, 12, 16, device="meta"), None if causal else mask.to("meta"))
    assert out.device.type == "meta" and out.shape == (2, 12, 16)


@pytest.mark.parametrize("strategy", ["darts", "gdas", "fixed"])
def test_a_supernet_step_and_its_objective_follow_the_device(strategy, tiny_spec):
    """A supernet step with its mixer, masks and cost term, run on the CPU with the meta device as the
    default: a tensor made without the input's device lands on meta and fails the op that meets it."""
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize
    from nasgraph.model import GraphModule
    from nasgraph.search.objective import CostTable
    from nasgraph.search.strategies import get

    doc = load_spec(tiny_spec("head", strategy, ", objective: {flops: {weight: 0.1}}"), ["model.position=sinusoidal"])
    graph = compile_spec(doc)
    model = GraphModule(graph)
    mixer = get(strategy)(doc.spec.search, 6, CostTable.from_summary(summarize(graph)))
    mixer.attach(model)
    vocab = next(m for m in model.modules() if isinstance(m, torch.nn.Embedding)).num_embeddings
    tokens, labels = torch.randint(1, vocab, (4, 12)), torch.randint(0, 2, (4,))  # (B, T), (B,)
    with torch.device("meta"):
        loss = mixer.objective(model, model(tokens), labels)
        loss.backward()
    assert loss.device.type == "cpu" and torch.isfinite(loss)


# -- checkpoints between devices -------------------------------------------------------------------
def _stop_at(monkeypatch, at: int) -> None:
    """Interrupt training at step `at` (KeyboardInterrupt, as Ctrl-C), after the checkpoints before it."""
    from nasgraph.training.step import WeightStep

    real, count = WeightStep.step, [0]

    def interrupted(self, *a):
        count[0] += 1
        if count[0] == at:
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(WeightStep, "step", interrupted)


def resume_on(device: str, spec, tmp_path, monkeypatch) -> tuple[dict, dict]:
    """(final val of an uninterrupted CPU run, final val of a CPU run cut at step 5 and resumed on `device`)."""
    assert cli("train", spec, "--out", tmp_path / "full", "--no-progress", "--device", "cpu") == 0
    with monkeypatch.context() as m:
        _stop_at(m, 5)
        assert cli("train", spec, "--out", tmp_path / "cut", "--no-progress", "--device", "cpu") == 130
    assert cli("train", spec, "--out", tmp_path / "cut", "--no-progress", "--resume", "--device", device) == 0
    return tuple(json.loads((tmp_path / r / "result.json").read_text())["val"] for r in ("full", "cut"))


def test_checkpoints_hold_cpu_loadable_tensors_and_a_resume_may_change_device(train_spec, tmp_path, monkeypatch):
    """The spec's train.device may change on --resume (where, not what); the result equals the uninterrupted run."""
    from nasgraph.training.checkpoint import read_state

    spec = train_spec(extra=", device: cpu")
    full, cut = resume_on("auto", spec, tmp_path, monkeypatch)
    assert full == cut
    state = read_state(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert all(t.device.type == "cpu" for t in state["model"].values())
    moved = spec.read_text().replace("device: cpu", "device: auto")
    spec.write_text(moved)
    assert cli("train", spec, "--out", tmp_path / "cut", "--resume", "--no-progress") == 0


def test_eval_takes_a_device(train_spec, tmp_path, capsys):
    assert cli("train", train_spec(), "--out", tmp_path / "run", "--no-progress") == 0
    capsys.readouterr()
    assert cli("eval", tmp_path / "run", "--device", "cpu", "--json") == 0
    assert json.loads(capsys.readouterr().out)["n"] == 64


# -- CUDA (skipped without a GPU) ------------------------------------------------------------------
@cuda
@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_cuda_training_learns(precision, train_spec, tmp_path):
    run = tmp_path / "run"
    assert cli("train", train_spec(steps=40, extra=f", precision: {precision}"), "--out", run, "--no-progress",
               "--device", "cuda") == 0
    losses = [r["loss"] for r in rows(run)]
    assert losses[-1] < 0.7 * losses[0]
    from nasgraph.training.checkpoint import read_state

    state = read_state(run / "checkpoints" / "last.pt")       # written on the GPU, read on the CPU
    assert all(t.device.type == "cpu" for t in state["model"].values())
    assert (state["scaler"] is not None) == (precision == "fp16")


@cuda
def test_a_cpu_run_resumed_on_cuda_agrees_with_the_cpu_run(train_spec, tmp_path, monkeypatch):
    full, cut = resume_on("cuda", train_spec(), tmp_path, monkeypatch)
    assert cut["loss"] == pytest.approx(full["loss"], rel=1e-3, abs=1e-4)
    assert abs(cut["acc"] - full["acc"]) <= 2 / full["n"]


@cuda
def test_a_search_on_cuda(tiny_spec, tmp_path):
    assert cli("search", tiny_spec(strategy="gdas"), "--out", tmp_path / "s", "--no-progress", "--device", "cuda") == 0
    assert (tmp_path / "s" / "derived.yaml").exists()

