"""`nasgraph train` / `nasgraph eval`: a discrete spec trained from scratch in a run folder."""
from __future__ import annotations

import sys
from pathlib import Path

from nasgraph import distributed, tasks
from nasgraph.errors import NasgraphError
from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.runfolder import require
from nasgraph.spec.checks import load_task_data
from nasgraph.training.checkpoint import CheckpointError, misfit, model_weights, read_state
from nasgraph.training.data import evaluate
from nasgraph.training.device import resolve_device, runtime_train
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.rundir import RunDir, read_json

EXTENDABLE = ("train.steps",)   # what `train --resume --extend` may change


def build_discrete(doc):
    """Compile a spec without choice points into (graph, GraphModule)."""
    graph = compile_spec(doc)
    if graph.graph.get("elastic"):
        raise NasgraphError(f"{doc.path}: the model has elastic dimensions ({{choices: [...]}}): search them "
                            f"(strategy: evolution) and train a derived spec, or give each dimension one value")
    choices = [n for n, d in graph.nodes(data=True) if d.get("choice")]
    if choices:
        raise NasgraphError(f"{doc.path}: {len(choices)} choice point(s) ({', '.join(choices[:3])}"
                            f"{', ...' if len(choices) > 3 else ''}): run `nasgraph search` and `nasgraph derive` "
                            f"first, or give each attention one candidate")
    return graph, GraphModule(graph)


def check_head(doc, graph, class_names) -> None:
    """The model must emit one logit per class of the task's data (fewer: labels out of range)."""
    out = graph.graph["output"]
    emitted = graph.nodes[out]["shape"][-1]
    if isinstance(emitted, int) and emitted != len(class_names):
        raise doc.error(f"the model emits {emitted} logits but the task has {len(class_names)} classes; "
                        f"set the head's num_classes to {len(class_names)} (or leave it out)",
                        graph.nodes[out].get("path", ("model",)))


def run_train(doc, out: str | Path, *, resume: bool = False, extend: bool = False, progress: bool = True,
              device: str | None = None) -> dict:
    """Train `doc` into run folder `out` on `device` (--device; default train.device). Under torchrun the
    ranks train data-parallel and rank 0 writes the folder."""
    if extend and not resume:
        raise NasgraphError("--extend continues a run: pass it with --resume")
    train = runtime_train(doc, device)
    with distributed.group(resolve_device(train.device)):     # torchrun's ranks; a no-op in one process
        return _train(doc, out, train, resume=resume, extend=extend, progress=progress)


def _train(doc, out: str | Path, train, *, resume: bool, extend: bool, progress: bool) -> dict:
    seed_everything(doc.spec.train.seed)
    graph, model = build_discrete(doc)
    run = RunDir(out, kind="train", resume=resume)       # refuses other kinds and used folders first
    hint = "" if extend else "; to train on to a larger train.steps, add --extend"
    changed = run.snapshot_spec(doc.raw, resume=resume, extend=EXTENDABLE if extend else (), hint=hint)
    if extend:
        _check_extension(run, doc, changed)
        run.write_spec(doc.raw)
    config = tasks.parse_task(doc.spec.task)
    with distributed.rank0_first():          # a download or cache the other ranks then read
        data = load_task_data(config, doc.error)
    check_head(doc, graph, data.class_names)
    task = tasks.get(config.kind)(config)
    result = fit(model, data.splits, train, run, resume=run.resuming, desc=f"train {doc.spec.name}",
                 progress=progress and distributed.is_writer(), task=task)
    result["metric"] = {"name": task.metric, "higher_is_better": task.higher_is_better}
    result["params"] = sum(p.numel() for p in model.parameters())
    run.write_json("result.json", result)
    run.write_json("task.json", {"vocab": data.vocab, "class_names": data.class_names,
                                 "tokenizer": data.tokenizer, "max_len": config.max_len,
                                 "kind": config.kind, "output": task.output})
    return result


def _check_extension(run: RunDir, doc, changed: list[str]) -> None:
    """--extend: only train.steps may grow; the cosine schedule is re-planned over the new total."""
    state = run.checkpoints.load() if run.resuming else None
    done = state["step"] if state else 0
    if doc.spec.train.steps <= done:
        raise NasgraphError(f"--extend: train.steps {doc.spec.train.steps} is not past the run's {done} steps "
                            f"done; set a larger train.steps")
    if changed:
        print(f"extending {run.path}: {'; '.join(changed)} (from step {done}; learning-rate schedule re-planned "
              f"over the new total)", file=sys.stderr)


def load_trained(run_dir: str | Path):
    """(doc, model with the run's last checkpoint) from a train run folder; loads no code."""
    from nasgraph.spec import load_spec

    run_dir = require(run_dir, "train", "needs spec.yaml and checkpoints/last.pt")
    ckpt = run_dir / "checkpoints" / "last.pt"
    if not (run_dir / "spec.yaml").exists() or not ckpt.exists():
        raise NasgraphError(f"{run_dir}: not a finished train run (needs spec.yaml and checkpoints/last.pt)")
    doc = load_spec(run_dir / "spec.yaml")
    _, model = build_discrete(doc)
    try:
        weights = model_weights(ckpt)
    except CheckpointError as err:
        if not err.unsafe and _readable(run_dir / "checkpoints" / "prev.pt"):
            raise NasgraphError(f"{err}; checkpoints/prev.pt is intact: `nasgraph train {run_dir}/spec.yaml --out "
                                f"{run_dir} --resume` rebuilds the last one") from None
        raise
    problem = misfit(model, weights)
    if problem:
        raise NasgraphError(f"{ckpt} does not fit the run's spec: {problem}")
    model.load_state_dict(weights)
    return doc, model.eval()


def _readable(path: Path) -> bool:
    try:
        read_state(path)
        return True
    except CheckpointError:
        return False


def run_eval(run_dir: str | Path, split: str = "test", device: str | None = None) -> dict:
    """Metrics of a train run's last checkpoint on `split`, computed on `device` (default: the run's train.device)."""
    doc, model = load_trained(run_dir)
    model.to(resolve_device(runtime_train(doc, device).device))
    config = tasks.parse_task(doc.spec.task)
    data = load_task_data(config, doc.error)
    if split not in data.splits:
        raise NasgraphError(f"unknown split '{split}'; valid: {', '.join(data.splits)}")
    return evaluate(model, data.splits[split], doc.spec.train.batch_size, task=tasks.get(config.kind)(config))


def task_json(run_dir: Path) -> dict | None:
    """A train run's task.json (tokenizer, class names), None when absent; damage is an error."""
    p = Path(run_dir) / "task.json"
    if not p.exists():
        return None
    data = read_json(p, "the run's task record")
    if not isinstance(data, dict):
        raise NasgraphError(f"{p}: damaged task record (expected a JSON object)")
    return data
