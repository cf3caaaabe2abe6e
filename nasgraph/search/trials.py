"""Trials: one discrete architecture of the space, trained with the ordinary loop in its own folder.

A trial is the derived spec of a choice (`derive_spec`, the one derive path) compiled by the same
GraphModule, trained by `fit` on the search's train slice and scored on its held-out "arch" slice.
RUN/trials/<name>/ holds spec.yaml, metrics.jsonl, checkpoints/ and one `budget<steps>.json` per
budget reached: a trial asked again for a budget it finished is not retrained (`--resume`), and a
trial asked for a larger budget continues from its checkpoint (successive halving's rungs).

Strategies hand a batch of independent `TrialRequest`s to `run_trials` (`ctx.run_trials`): finished
ones are read back from their budget files, the rest go to the search's backend (nasgraph.backends:
in-process, or Ray Tune), which runs `train_trial` on a copy of the context, in any order: every trial
seeds itself, so its record does not depend on where or when it ran (at the same torch thread count).
"""
from __future__ import annotations

import dataclasses
import functools
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from nasgraph.graph import compile_spec
from nasgraph.model import GraphModule
from nasgraph.search.derive import derive_spec
from nasgraph.search.paired import ReferenceOutputs, example_scores, fingerprint
from nasgraph.training.loop import fit, seed_everything
from nasgraph.training.rundir import RunDir

Choice = dict[str, list[int]]
# this process's reference outputs, by (reference trial's checkpoint, its mtime, slice, batch size): a
# teacher scored once for all of its students; the latest few are kept
_REFERENCES: dict[tuple, ReferenceOutputs] = {}
KEEP_REFERENCES = 2
Measure = Callable[..., dict]      # measure(ctx, model, splits) -> numbers added to the record


@dataclass(frozen=True)
class TrialRequest:
    """One training of `choice` at `seed` to `steps`, in RUN/trials/<name>/.

    `init_from`: a finished trial's name; the new trial starts from its weights (matching tensors).
    `reference`: a finished trial's name; the record gets the KL divergence to its outputs ("kl",
    "kl_se", on the held-out slice). `measure(ctx, model, splits)`: extra numbers for the record;
    picklable (a module-level function or a functools.partial of one) so that other processes can run it.
    """
    choice: Choice
    seed: int
    steps: int
    name: str
    init_from: str | None = None
    reference: str | None = None
    measure: Measure | None = None


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


def load_model(folder: Path):
    """The trained model of a finished trial (its spec and last checkpoint), in eval mode."""
    from nasgraph.spec import load_spec

    model = GraphModule(compile_spec(load_spec(folder / "spec.yaml")))
    model.load_state_dict(RunDir(folder, resume=True).load_checkpoint()["model"])
    return model.eval()


def reference_outputs(folder: Path, split, batch_size: int) -> ReferenceOutputs:
    """The outputs of the finished trial in `folder` on `split`, shared by every trial scored against it."""
    last = folder / "checkpoints" / "last.pt"
    key = (str(folder.resolve()), last.stat().st_mtime_ns if last.exists() else 0, fingerprint(split), batch_size)
    if key not in _REFERENCES:
        while len(_REFERENCES) >= KEEP_REFERENCES:
            _REFERENCES.pop(next(iter(_REFERENCES)))
        _REFERENCES[key] = ReferenceOutputs(lambda: load_model(folder))
    return _REFERENCES[key]


def matching(own: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> list[str]:
    """Names of `own` that `state` holds with the same shape: what a student takes from its teacher."""
    return [k for k, v in own.items() if k in state and state[k].shape == v.shape]


def inherit(model, state: dict[str, torch.Tensor]) -> int:
    """Copy every tensor of `state` whose name and shape match into `model`; returns how many."""
    same = {k: state[k] for k in matching(model.state_dict(), state)}
    model.load_state_dict(same, strict=False)
    return len(same)


def inherited_fraction(model, state: dict[str, torch.Tensor]) -> float:
    """The share of `model`'s parameter elements that `inherit(model, state)` fills (name and shape match):
    1.0 when a student starts wholly from its teacher, less when it has parameters the teacher lacks."""
    params = dict(model.named_parameters())
    total = sum(p.numel() for p in params.values())
    same = sum(params[k].numel() for k in matching(params, state))
    return same / total if total else 1.0


def inheritance(ctx, base: Choice, choices: list[Choice]) -> list[float]:
    """`inherited_fraction` of each of `choices` started from a model of `base` (built, not trained)."""
    with tempfile.TemporaryDirectory() as tmp:
        state = build(ctx, base, Path(tmp) / "base")[1].state_dict()
        return [inherited_fraction(build(ctx, c, Path(tmp) / f"c{i}")[1], state) for i, c in enumerate(choices)]


def finished(ctx, request: TrialRequest) -> dict | None:
    """The record of a trial that reached its budget (its budget file), else None."""
    done = ctx.out / "trials" / request.name / f"budget{request.steps}.json"
    return json.loads(done.read_text()) if done.exists() else None


def run_trials(ctx, requests: list[TrialRequest], desc: str = "trials") -> list[dict]:
    """The records of `requests`, in order: finished ones read back, the others run on `ctx.backend`."""
    names = [r.name for r in requests]
    if len(set(names)) != len(names):
        raise ValueError(f"a batch names a trial twice: {sorted(n for n in set(names) if names.count(n) > 1)}")
    records = [finished(ctx, r) for r in requests]
    todo = [r for r, rec in zip(requests, records) if rec is None]
    if todo:
        # what a trial process gets: absolute paths, no backend, its own bars only when in this process
        worker = dataclasses.replace(ctx, out=ctx.out.resolve(), backend=None, _splits={},
                                     progress=ctx.progress and not ctx.backend.remote)
        run = functools.partial(train_trial, worker, threads=ctx.backend.threads, device=ctx.backend.device)
        fresh = iter(ctx.backend.map(run, todo, names=[r.name for r in todo], desc=desc, progress=ctx.progress,
                                     folder=ctx.out))
        records = [rec if rec is not None else next(fresh) for rec in records]
    return records


def steady_cpu_per_step(marks: list[tuple[int, float]]) -> float | None:
    """Process CPU seconds per training step after fit's first log interval (whose first steps carry the
    start-up: the data stream, allocations, the first autograd pass), periodic checkpoints included;
    None with fewer than two log rows."""
    if len(marks) < 3 or marks[-1][0] <= marks[1][0]:
        return None
    return round((marks[-1][1] - marks[1][1]) / (marks[-1][0] - marks[1][0]), 6)


def train_trial(ctx, request: TrialRequest, threads: int | None = None, device: str | None = None) -> dict:
    """Train `request.choice` to `request.steps` (continuing its folder if it holds fewer) and score it.

    `threads`: torch threads for this trial (a backend's per-trial CPUs), else `train.threads`; `device`:
    where the backend placed it (a Ray trial holding a GPU share: cuda), else the search's device.
    Returns {name, choice, seed, steps, score, eval_n, seconds, examples[, kl, kl_se], ...measured}:
    "examples" holds the per-example scores on the held-out slice (nasgraph.search.paired), for
    paired comparisons of the trials of one seed.
    """
    name, seed, steps = request.name, request.seed, request.steps
    folder = ctx.out / "trials" / name
    record = finished(ctx, request)
    if record is not None:
        return record
    cpu0 = time.process_time()          # this trial's CPU time (its own process under a remote backend)
    seed_everything(seed)
    _, model = build(ctx, request.choice, folder)
    run = RunDir(folder, resume=True)
    resuming = run.resuming
    if request.init_from is not None and not resuming:
        inherit(model, RunDir(ctx.out / "trials" / request.init_from, resume=True).load_checkpoint()["model"])
    splits = ctx.splits(seed)
    held_out = ctx.score_split(splits)
    # the score is one per-example evaluation of the held-out slice after training (fit's own
    # evaluations read a single example of it: they only feed its log)
    update = {"seed": seed, "checkpoint_every": min(ctx.train.checkpoint_every, steps), "eval_every": steps,
              "eval_batches": 1, **({"threads": threads} if threads else {}), **({"device": device} if device else {})}
    cpu_fit, marks = time.process_time(), []
    result = fit(model, {"train": splits["train"], "val": held_out.subset([0])}, ctx.train.model_copy(update=update),
                 run, steps=steps, resume=run.resuming, desc=f"trial {name} @{steps}", progress=ctx.progress,
                 task=ctx.task, cpu_marks=marks)
    cpu_fit = time.process_time() - cpu_fit
    reference = reference_outputs(ctx.out / "trials" / request.reference, held_out, ctx.train.batch_size) \
        if request.reference else None
    cpu_score = time.process_time()
    scores = example_scores(model, held_out, ctx.train.batch_size, ctx.task, reference)
    cpu_score = time.process_time() - cpu_score
    record = {"name": name, "choice": request.choice, "seed": seed, "steps": steps, "score": scores["score"],
              "eval_n": sum(scores["counts"] or [1] * len(held_out)), "seconds": result["seconds"],
              **{k: scores[k] for k in ("kl", "kl_se") if k in scores},
              "examples": {k: scores[k] for k in ("key", "values", "counts")},
              **(request.measure(ctx, model, splits) if request.measure else {})}
    # CPU seconds of the training steps alone (`fit`: all `steps` unless it continued a folder) and of the trial
    # (per step once started: after fit's first log interval, None when too short), and of its scoring
    record.update(train_steps=None if resuming else steps, train_cpu_seconds=round(cpu_fit, 3),
                  train_cpu_per_step=steady_cpu_per_step(marks), score_cpu_seconds=round(cpu_score, 3),
                  cpu_seconds=round(time.process_time() - cpu0, 3))
    run.write_json(f"budget{steps}.json", record)
    return record
