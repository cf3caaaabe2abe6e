"""Does a per-layer mix beat the homogeneous models, beyond the noise of seeds and of the test set?

    python benchmarks/fidelity_hetero.py --task motif_cls --mix local+linear --against linear softmax --seeds 0 1 2 3

Every architecture at every seed is the standalone training of benchmarks/search_fidelity.py (its
cache; trained if missing), its last checkpoint scored per test example. For the mix against each
homogeneous model: the mean over seeds of the per-seed test difference (one seed: the same data
order; every seed: the same test examples) and three standard errors of it:
- seeds: the spread of the per-seed differences, sd / sqrt(seeds) (training randomness);
- examples: the paired per-example difference of the seed-averaged correctness, sd / sqrt(n) (which
  test examples were drawn; shared by every seed, so it does not shrink with more seeds);
- total: the two combined in quadrature (conservative: the seed spread already holds part of the
  example noise).
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import search_fidelity as sf  # noqa: E402
from fidelity_tasks import CANDIDATES, FULL, spec_template  # noqa: E402
from nasgraph import tasks  # noqa: E402
from nasgraph.search.paired import example_scores  # noqa: E402
from nasgraph.tasks.base import Split  # noqa: E402
from nasgraph.training.run import load_trained  # noqa: E402


def arch_spec(base: dict, types: list[str]) -> dict:
    """The standalone spec of one type (a homogeneous model, as search_fidelity trains it) or a per-layer mix."""
    by_label = {sf.label(c): c for c in CANDIDATES}
    if len(types) == 1:
        return {**base, "model": {**base["model"], "attention": {"candidates": [by_label[types[0]]]}}}
    model = {k: v for k, v in base["model"].items() if k != "attention"}
    model["layers"] = [{"attention": {"candidates": [by_label[t]], "causal": False}} for t in types]
    return {**base, "model": model}


DATA: dict[str, tuple] = {}   # (task config, its test split) by the task's raw spec and options, built once


def test_split(task: dict, n_test: int | None, fresh_seed: int | None) -> tuple:
    """(task config, the split to score): the run's own test split, drawn longer (`n_test`: a synthetic
    task whose splits are drawn in order, train first), or followed by examples of the same task drawn
    at another task seed (`fresh_seed`: for tasks whose seed only draws examples, such as ListOps) that
    are in none of the run's own splits."""
    tag = repr((task, n_test, fresh_seed))
    if tag not in DATA:
        config = tasks.parse_task({**task, **({"n_test": n_test} if n_test else {})})
        own = tasks.load_task(config).splits
        split = own["test"]
        if fresh_seed is not None:
            seen = {tuple(ids) for part in own.values() for ids in part.ids}
            other = tasks.load_task(tasks.parse_task({**task, "seed": fresh_seed, "n_train": 1, "n_val": 0,
                                                      "n_test": task["n_test"] * 6})).splits["test"]
            keep = [i for i, ids in enumerate(other.ids) if tuple(ids) not in seen]
            split = Split(split.ids + [other.ids[i] for i in keep], split.labels + [other.labels[i] for i in keep])
            print(f"fresh test examples: {len(keep)} of {len(other.ids)} drawn at task seed {fresh_seed} "
                  f"({len(other.ids) - len(keep)} were in the run's splits)")
        DATA[tag] = config, split
    return DATA[tag]


def per_example(spec: dict, seed: int, n_test: int | None = None, fresh_seed: int | None = None) -> list[float]:
    """Correct (1) or not (0) per test example (test_split), for the standalone run of `spec` at `seed`;
    checks that its accuracy on its own test examples (the split's first ones) is the stored result."""
    cached = sf.train_standalone(spec, seed, progress=False)
    seeded = {**spec, "train": {**spec["train"], "seed": seed}}
    doc, model = load_trained(sf.OUT / "runs" / f"train-{sf.key_of(seeded)}")
    config, split = test_split(spec["task"], n_test, fresh_seed)
    values = example_scores(model, split, doc.spec.train.batch_size, tasks.get(config.kind)(config))["values"]
    own = values[:spec["task"].get("n_test", len(values))]
    if abs(sum(own) / len(own) - cached["test"]) > 1e-9:
        raise SystemExit(f"seed {seed}: {sum(own) / len(own)} on the run's own test examples, its result says "
                         f"{cached['test']}: not the same examples or model")
    return values


def compare(a: list[list[float]], b: list[list[float]]) -> dict:
    """a, b: per seed, per example correctness of two architectures (same seeds, same examples)."""
    seeds, n = len(a), len(a[0])
    diffs = [statistics.mean(x) - statistics.mean(y) for x, y in zip(a, b)]
    mean = statistics.mean(diffs)
    se_seeds = statistics.stdev(diffs) / math.sqrt(seeds) if seeds > 1 else float("nan")
    per_ex = [sum(a[s][i] - b[s][i] for s in range(seeds)) / seeds for i in range(n)]
    se_examples = statistics.stdev(per_ex) / math.sqrt(n)
    total = math.hypot(se_seeds, se_examples)
    return {"diffs": diffs, "mean": mean, "se_seeds": se_seeds, "se_examples": se_examples, "se_total": total,
            "z_total": mean / total if total else float("inf")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", required=True, choices=list(FULL))
    ap.add_argument("--mix", required=True, help="one type per layer, e.g. local+linear")
    ap.add_argument("--against", nargs="+", required=True, help="homogeneous types, e.g. linear softmax")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--n-test", type=int, help="a synthetic task's test split drawn to this size (its first "
                    "n_test examples are the runs' own test split; none was used in training)")
    ap.add_argument("--fresh-seed", type=int, help="add 6x n_test examples drawn at this task seed, minus any in "
                    "the runs' own splits (a task whose seed only draws the examples, e.g. listops)")
    args = ap.parse_args()
    base = spec_template(args.task, FULL[args.task], sf.OUT / "data")
    mix = [per_example(arch_spec(base, args.mix.split("+")), s, args.n_test, args.fresh_seed) for s in args.seeds]
    print(f"## {args.task}: mix {args.mix} against homogeneous models, seeds {args.seeds}, "
          f"{len(mix[0])} test examples\n")
    print(f"mix {args.mix}: test " + ", ".join(f"{statistics.mean(x):.4f}" for x in mix)
          + f" (mean {statistics.mean(statistics.mean(x) for x in mix):.4f})\n")
    print("| against | its test per seed | mix - it per seed (points) | mean | SE seeds | SE examples | "
          "SE total | mean / SE total |\n|---|---|---|---|---|---|---|---|")
    for other in args.against:
        runs = [per_example(arch_spec(base, [other]), s, args.n_test, args.fresh_seed) for s in args.seeds]
        c = compare(mix, runs)
        print(f"| {other} | {', '.join(f'{statistics.mean(x):.4f}' for x in runs)} | "
              f"{', '.join(f'{100 * d:+.1f}' for d in c['diffs'])} | {100 * c['mean']:+.2f} | "
              f"{100 * c['se_seeds']:.2f} | {100 * c['se_examples']:.2f} | {100 * c['se_total']:.2f} | "
              f"{c['z_total']:.1f} |")


if __name__ == "__main__":
    main()
