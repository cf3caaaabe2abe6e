"""Search end to end on the tiny task: strategies, derive, train, resume, divergence, objective."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from nasgraph.cli import main
from nasgraph.graph import compile_spec
from nasgraph.graph.summary import summarize
from nasgraph.model import GraphModule
from nasgraph.search.objective import CostTable
from nasgraph.search.strategies import get as get_strategy
from nasgraph.spec import load_spec


@pytest.mark.parametrize("strategy,granularity,extra", [
    ("darts", "layer", ""), ("darts", "head", ", order: 2"), ("gdas", "head", ""),
    ("fixed", "layer", ", derive: top1"), ("fixed", "head", ", derive: topk, topk: 2"),
    ("fixed", "head", ", derive: prune, finetune_steps: 2"), ("darts", "layer", ", select: perturbation")])
def test_search_derive_train(tiny_spec, tmp_path, strategy, granularity, extra):
    spec = tiny_spec(granularity, strategy, extra)
    run = tmp_path / "run"
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    outcome = json.loads((run / "search.json").read_text())
    assert set(outcome["choice"]) == {"L0.attention", "L1.attention"}
    groups = 2 if granularity == "head" else 1
    assert all(len(v) == groups for v in outcome["choice"].values())
    assert (run / "report.md").exists() and (run / "curves.png").exists()
    assert (run / "seed0" / "metrics.jsonl").exists() and (run / "seed0" / "alphas.jsonl").exists()
    derived = tmp_path / "derived.yaml"
    assert main(["derive", str(run), "-o", str(derived)]) == 0
    g = compile_spec(load_spec(derived))
    assert not any(d.get("choice") for _, d in g.nodes(data=True))
    assert main(["train", str(derived), "--out", str(tmp_path / "train"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "train" / "result.json").read_text())["steps"] == 6
    assert main(["eval", str(tmp_path / "train")]) == 0


def test_derive_refuses_to_overwrite(tiny_spec, tmp_path, capsys):
    run = tmp_path / "run"
    main(["search", str(tiny_spec()), "--out", str(run), "--no-progress"])
    out = tmp_path / "derived.yaml"
    out.write_text("precious")
    assert main(["derive", str(run), "-o", str(out)]) == 2
    assert out.read_text() == "precious" and "refusing to overwrite" in capsys.readouterr().err


def test_search_refuses_a_used_run_folder(tiny_spec, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["search", str(tiny_spec()), "--out", str(run), "--no-progress"]) == 0
    assert main(["search", str(tiny_spec()), "--out", str(run), "--no-progress"]) == 2
    assert "already holds a search run" in capsys.readouterr().err


def test_resume_reproduces_the_uninterrupted_run(tiny_spec, tmp_path, monkeypatch):
    spec = tiny_spec("head", "darts")
    assert main(["search", str(spec), "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    # kill a second run right after its first checkpoint (step 3 of 6), then resume it
    import nasgraph.training.loop as loop

    real = loop.RunDir.save_checkpoint

    def save_then_die(self, state):
        real(self, state)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.RunDir, "save_checkpoint", save_then_die)
    assert main(["search", str(spec), "--out", str(tmp_path / "cut"), "--no-progress"]) == 130
    monkeypatch.setattr(loop.RunDir, "save_checkpoint", real)
    assert main(["search", str(spec), "--out", str(tmp_path / "cut"), "--no-progress", "--resume"]) == 0
    full = json.loads((tmp_path / "full" / "search.json").read_text())["per_seed"][0]
    cut = json.loads((tmp_path / "cut" / "search.json").read_text())["per_seed"][0]
    assert cut["probs"] == full["probs"]
    assert cut["final"]["val"] == full["final"]["val"]
    lines = lambda p: [json.loads(l)["loss"] for l in (p / "seed0" / "metrics.jsonl").read_text().splitlines()]
    assert lines(tmp_path / "cut") == lines(tmp_path / "full")


def test_nan_loss_stops_cleanly_and_keeps_the_checkpoint(tiny_spec, tmp_path, monkeypatch, capsys):
    import nasgraph.training.step as loop   # where the weight step computes its loss

    calls = {"n": 0}
    real_loss = loop.task_loss

    def poisoned(logits, labels):
        calls["n"] += 1
        return real_loss(logits, labels) * (float("nan") if calls["n"] > 4 else 1.0)

    monkeypatch.setattr(loop, "task_loss", poisoned)
    spec = tiny_spec("layer", "fixed")
    assert main(["search", str(spec), "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "loss became nan at step 5" in err and "Traceback" not in err
    state = torch.load(tmp_path / "run" / "seed0" / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_flops_objective_pushes_alphas_to_cheaper_candidates(tiny_spec):
    torch.manual_seed(0)
    doc = load_spec(tiny_spec("layer", "darts", ", objective: {flops: {weight: 5.0}}"), ["search.alpha_lr=0.05"])
    graph = compile_spec(doc)
    cost = CostTable.from_summary(summarize(graph))
    strategy = get_strategy("darts")(doc.spec.search, 10, cost)
    model = GraphModule(graph)
    strategy.attach(model)
    before = float(cost.expected({n: p.detach() for n, p in strategy.probabilities(model).items()}))
    x = torch.randint(2, 8, (8, 10))
    y = torch.randint(0, 2, (8,))
    for _ in range(20):
        strategy.arch_step(model, (x, y), (x, y), 1e-3)
    after = float(cost.expected({n: p.detach() for n, p in strategy.probabilities(model).items()}))
    assert after < before
    costliest = max(range(3), key=lambda c: cost.per_node["L0.attention"][c])    # softmax
    assert model.mixed_layers()["L0.attention"].alpha.argmin().item() == costliest


def test_gdas_samples_one_hot_weights(tiny_spec):
    doc = load_spec(tiny_spec("head", "gdas"))
    strategy = get_strategy("gdas")(doc.spec.search, 10, None)
    w = strategy(torch.zeros(2, 3, requires_grad=True), "L0.attention")
    assert torch.equal(w.detach().sum(-1), torch.ones(2)) and set(w.detach().unique().tolist()) <= {0.0, 1.0}


def test_derived_spec_lists_per_head_types(tiny_spec, tmp_path):
    from nasgraph.search.derive import derive_spec

    doc = load_spec(tiny_spec("head"))
    derived = derive_spec(doc.raw, compile_spec(doc), {"L0.attention": [0, 2], "L1.attention": [1, 1]})
    layers = derived["model"]["layers"]
    assert layers[0]["attention"]["heads"] == ["softmax", {"local": {"window": 4}}]
    assert layers[1]["attention"]["candidates"] == ["linear"]
    assert "search" not in derived and "attention" not in derived["model"]
    yaml.safe_dump(derived)
