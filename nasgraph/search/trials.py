"""Trials: one discrete architecture of the space, trained with the ordinary loop in its own folder.

A trial is the derived spec of a choice (`derive_spec`, the one derive path) compiled by the same
GraphModule, trained by `fit` on the search's train slice and scored on its held-out "arch" slice.
RUN/trials/<name>/ holds spec.yaml, metrics.jsonl, checkpoints/ and one `budget<steps>.json` per
budget reached: a trial asked again for a budget it finished is not retrained (`--resume`), and a
trial asked for a larger budget continues from its checkpoint (successive halving's rungs).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.search.derive import derive_spec
from nasgraph.search.paired import example_scores
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.rundir import RunDir

Choice = dict[str, list[int]]


def trial_name(ctx, choice: Choice, seed: int, prefix: str = "") -> str:
    """A readable folder name: the type per layer (and head), then the seed."""
    parts = ["-".join(dict.fromkeys(ls)) if len(set(ls)) == 1 else "_".join(ls)
             for ls in ctx.label_choice(choice).values()]
    return f"{prefix}{'+'.join(p.split('(')[0] for p in parts)}-s{seed}"


def build(ctx, choice: Choice, folder: Path):
    """(spec document, GraphModule) of `choice`; the derived spec is written to folder/spec.yaml."""
    from nasgraph.spec import load_spec

    path = RunDir(folder).write_spec(derive_spec(ctx.doc.raw, ctx.graph, choice))
    doc = load_spec(path)
    return doc, GraphModule(compile_spec(doc))


def load_model(ctx, choice: Choice, folder: Path):
    """The trained model of a finished trial (its last checkpoint), in eval mode."""
    _, model = build(ctx, choice, folder)
    state = RunDir(folder, resume=True).load_checkpoint()
    model.load_state_dict(state["model"])
    return model.eval()


def inherit(model, state: dict[str, torch.Tensor]) -> int:
    """Copy every tensor of `state` whose name and shape match into `model`; returns how many."""
    own = model.state_dict()
    same = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(same, strict=False)
    return len(same)


def train_trial(ctx, choice: Choice, seed: int, steps: int, name: str, *, init: dict | None = None,
                reference: torch.nn.Module | None = None) -> dict:
    """Train `choice` to `steps` at `seed` (continuing its folder if it holds fewer) and score it.

    `init`: a state dict to start from (matching tensors, e.g. a teacher's); `reference`: a model to
    measure the KL divergence to (the record's "kl", "kl_se"). The record's "examples" holds the
    per-example scores on the held-out slice (nasgraph.search.paired), for paired comparisons.
    Returns {name, seed, steps, score, eval_n, seconds, examples, ...}.
    """
    folder = ctx.out / "trials" / name
    done = folder / f"budget{steps}.json"
    if done.exists():
        return json.loads(done.read_text())
    seed_everything(seed)
    _, model = build(ctx, choice, folder)
    run = RunDir(folder, resume=True)
    if init is not None and not run.resuming:
        inherit(model, init)
    splits = ctx.splits(seed)
    held_out = ctx.score_split(splits)
    # the score is one per-example evaluation of the held-out slice after training (fit's own
    # evaluations read a single example of it: they only feed its log)
    train = ctx.train.model_copy(update={"seed": seed, "checkpoint_every": min(ctx.train.checkpoint_every, steps),
                                         "eval_every": steps, "eval_batches": 1})
    result = fit(model, {"train": splits["train"], "val": held_out.subset([0])}, train, run, steps=steps,
                 resume=run.resuming, desc=f"trial {name} @{steps}", progress=ctx.progress, task=ctx.task)
    scores = example_scores(model, held_out, ctx.train.batch_size, ctx.task, reference)
    record = {"name": name, "choice": choice, "seed": seed, "steps": steps, "score": scores["score"],
              "eval_n": sum(scores["counts"] or [1] * len(held_out)), "seconds": result["seconds"],
              **{k: scores[k] for k in ("kl", "kl_se") if k in scores},
              "examples": {k: scores[k] for k in ("key", "values", "counts")}}
    run.write_json(done.name, record)
    return record
