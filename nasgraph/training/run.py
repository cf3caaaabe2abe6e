"""`nasgraph train` / `nasgraph eval`: a discrete spec trained from scratch in a run folder."""
from __future__ import annotations

from pathlib import Path

import torch

from nasgraph import tasks
from nasgraph.errors import NasgraphError
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.training.data import evaluate
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.rundir import RunDir


def build_discrete(doc):
    """Compile a spec without choice points into (graph, GraphModule)."""
    graph = compile_spec(doc)
    choices = [n for n, d in graph.nodes(data=True) if d.get("choice")]
    if choices:
        raise NasgraphError(f"{doc.path}: {len(choices)} choice point(s) ({', '.join(choices[:3])}"
                            f"{', ...' if len(choices) > 3 else ''}): run `nasgraph search` and `nasgraph derive` "
                            f"first, or give each attention one candidate")
    return graph, GraphModule(graph)


def run_train(doc, out: str | Path, *, resume: bool = False, progress: bool = True) -> dict:
    seed_everything(doc.spec.train.seed)
    graph, model = build_discrete(doc)
    config = tasks.parse_task(doc.spec.task)
    data = tasks.load_task(config)
    run = RunDir(out, resume=resume)
    run.write_spec(doc.raw)
    task = tasks.get(config.kind)(config)
    result = fit(model, data.splits, doc.spec.train, run, resume=run.resuming, desc=f"train {doc.spec.name}",
                 progress=progress, task=task)
    result["metric"] = {"name": task.metric, "higher_is_better": task.higher_is_better}
    result["params"] = sum(p.numel() for p in model.parameters())
    run.write_json("result.json", result)
    run.write_json("task.json", {"vocab": data.vocab, "class_names": data.class_names,
                                 "tokenizer": data.tokenizer, "max_len": config.max_len,
                                 "kind": config.kind, "output": task.output})
    return result


def load_trained(run_dir: str | Path):
    """(doc, model with the run's last checkpoint) from a train run folder."""
    from nasgraph.spec import load_spec

    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not (run_dir / "spec.yaml").exists() or not ckpt.exists():
        raise NasgraphError(f"{run_dir}: not a train run (needs spec.yaml and checkpoints/last.pt)")
    doc = load_spec(run_dir / "spec.yaml")
    _, model = build_discrete(doc)
    model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=False)["model"])
    return doc, model.eval()


def run_eval(run_dir: str | Path, split: str = "test") -> dict:
    doc, model = load_trained(run_dir)
    config = tasks.parse_task(doc.spec.task)
    data = tasks.load_task(config)
    if split not in data.splits:
        raise NasgraphError(f"unknown split '{split}'; valid: {', '.join(data.splits)}")
    return evaluate(model, data.splits[split], doc.spec.train.batch_size, task=tasks.get(config.kind)(config))
