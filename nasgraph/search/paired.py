"""Paired comparisons: architectures scored on the same held-out examples.

A trial strategy scores every architecture of a seed on the same held-out slice, so the noise of a
difference of two scores is the spread of the per-example differences, not two independent binomial
errors: two models that answer 97% of the examples alike differ by far less noise than sqrt(2 p (1-p)
/ n). `example_scores` records, per example, the example's share of the task metric (correct answers,
or its loss scaled to the metric) and optionally its KL divergence to a reference model;
`paired_difference` turns two such records into (mean difference, standard error).

An examples record: {"key": fingerprint of the slice, "values": [...], "counts": [...] | None}; the
score is sum(values) / sum(counts) (counts: labelled positions per example, None when all are 1).
"""
from __future__ import annotations

import hashlib
import math

import torch
import torch.nn.functional as F

from nasgraph.tasks.batching import batch_order, collate
from nasgraph.training.device import module_device, to_device
from nasgraph.training.losses import IGNORE


def fingerprint(split) -> str:
    """A short id of a split's examples: two records pair only when they scored the same examples."""
    h = hashlib.sha1()
    for ids, label in zip(split.ids, split.labels):
        h.update(repr((len(ids), ids[:8], label)).encode())
    return f"{len(split)}:{h.hexdigest()[:12]}"


class ReferenceOutputs:
    """A reference model's log-probabilities on the batches of one slice, computed once and reused by
    every model scored against it (a teacher's outputs for all of its students). `load()` builds the
    model on first need; batches past `limit` floats in all (per-token outputs of a long LM slice) are
    recomputed instead of kept."""

    def __init__(self, load, limit: int = 2 ** 24):
        self.load, self.limit, self.model, self.kept, self.batches = load, limit, None, 0, {}

    def log_probs(self, b: int, tokens: torch.Tensor) -> torch.Tensor:
        """(N, C) log-probabilities of batch number b (its `tokens`) of the slice."""
        if b in self.batches:
            return self.batches[b].to(tokens.device)
        if self.model is None:
            self.model = self.load().eval()
        p = F.log_softmax(self.model.to(tokens.device)(tokens).flatten(0, -2), -1)   # (N, C)
        if self.kept + p.numel() <= self.limit:
            self.batches[b], self.kept = p, self.kept + p.numel()
        return p


@torch.no_grad()
def example_scores(model, split, batch_size: int, task, reference=None) -> dict:
    """Per example of `split` (in its order): the task metric's share and, with `reference` (a model,
    or a ReferenceOutputs of this split and batch size), the summed KL(reference || model) over its
    labelled positions. Returns the examples record plus "score" (the task's score of the whole slice)
    and, with a reference, "kl" (mean per labelled position) and "kl_se"."""
    was = model.training
    model.eval()
    device = module_device(model)
    if reference is not None and not isinstance(reference, ReferenceOutputs):
        reference = ReferenceOutputs(lambda model=reference: model, limit=0)
    n_ex = len(split)
    loss, correct, count, kl = [0.0] * n_ex, [0] * n_ex, [0] * n_ex, [0.0] * n_ex
    for b, group in enumerate(batch_order([len(s) for s in split.ids], batch_size, shuffle=False)):
        tokens, labels = to_device(collate([split.ids[i] for i in group], [split.labels[i] for i in group]), device)
        logits = model(tokens)                                                   # (B, C) or (B, T, V)
        flat_logits, flat_labels = logits.flatten(0, -2), labels.flatten()         # (N, C), (N,)
        rows = torch.arange(len(group), device=device).repeat_interleave(flat_labels.numel() // len(group))  # (N,)
        keep = flat_labels != IGNORE
        ce = F.cross_entropy(flat_logits, flat_labels, ignore_index=IGNORE, reduction="none")   # (N,)
        hit = (flat_logits.argmax(-1) == flat_labels) & keep                                   # (N,)
        per_row = lambda x: torch.zeros(len(group), device=device).index_add_(0, rows, x.float())  # (N,)->(B,) # noqa: E731
        row_loss, row_hit, row_n = per_row(ce * keep), per_row(hit), per_row(keep)       # (B,) each
        row_kl = None
        if reference is not None:
            p = reference.log_probs(b, tokens)                                    # (N, C)
            q = F.log_softmax(flat_logits, -1)                                     # (N, C)
            row_kl = per_row((p.exp() * (p - q)).sum(-1) * keep)                   # (B,)
        for j, i in enumerate(group):
            loss[i], correct[i], count[i] = float(row_loss[j]), int(row_hit[j]), int(row_n[j])
            if row_kl is not None:
                kl[i] = float(row_kl[j])
    model.train(was)
    n = sum(count)
    metrics = task.metrics_from(sum(loss), sum(correct), n, split)
    score = task.score(metrics)
    if metrics[task.metric] == metrics["acc"]:
        values = [float(c) for c in correct]
    else:   # a score proportional to the mean loss (bits per byte): each example's loss, scaled
        scale = score / metrics["loss"] if metrics["loss"] else 0.0
        values = [x * scale for x in loss]
    out = {"key": fingerprint(split), "values": [round(v, 6) for v in values],
           "counts": None if all(c == 1 for c in count) else count, "score": score}
    if reference is not None:
        out["kl"], out["kl_se"] = ratio_mean_se(kl, count)
    return out


def ratio_mean_se(values: list[float], counts: list[int] | None) -> tuple[float, float]:
    """sum(values) / sum(counts) and its standard error over examples (ratio estimator)."""
    counts = counts or [1] * len(values)
    total, m = sum(counts), len(values)
    if not total:
        return 0.0, 0.0
    mean = sum(values) / total
    if m < 2:
        return mean, 0.0
    spread = sum((v - mean * c) ** 2 for v, c in zip(values, counts)) * m / (m - 1)
    return mean, math.sqrt(spread) / total


def paired_difference(a: dict, b: dict) -> tuple[float, float] | None:
    """(score(a) - score(b), its standard error) from two records of the same examples; None when they
    did not score the same examples."""
    if not a or not b or a.get("key") != b.get("key") or len(a["values"]) != len(b["values"]):
        return None
    if (a.get("counts") or None) != (b.get("counts") or None):
        return None
    diff = [x - y for x, y in zip(a["values"], b["values"])]
    return ratio_mean_se(diff, a.get("counts"))


def paired_over_seeds(a: list[dict | None], b: list[dict | None]) -> tuple[float, float, int] | None:
    """(mean difference, standard error, seeds) over the seeds both scored on the same examples.

    The error is the larger of the evaluation noise (paired, per seed, combined) and, with two or more
    seeds, the spread of the per-seed differences over seeds."""
    found = {}
    for x in a or []:
        for y in b or []:
            d = paired_difference(x, y) if x and y else None
            if d is not None:
                found[x["key"]] = d
    if not found:
        return None
    s = len(found)
    means = [d for d, _ in found.values()]
    mean = sum(means) / s
    se = math.sqrt(sum(e * e for _, e in found.values())) / s
    if s > 1:
        seed_sd = math.sqrt(sum((d - mean) ** 2 for d in means) / (s - 1))
        se = max(se, seed_sd / math.sqrt(s))
    return mean, se, s
