"""Does the search pick what brute force would, and for how much less? The fidelity suite of issue 8.

For each task regime (benchmarks/fidelity_tasks.py): train every homogeneous candidate standalone
(brute force, >= 2 seeds; cached in benchmarks/out/fidelity/cache so reruns reuse them), then run
each strategy once per seed and report per (task, strategy, seed): the pick, its standalone rank,
the retrained pick's test accuracy minus the best standalone's (a mixed pick is retrained at the
standalone seeds), Kendall tau of the search's ranking of the homogeneous candidates against the
standalone one, and the search's cost in units of one standalone training (process CPU time, robust
to a shared machine's load; brute force costs C of them). Regimes with a `cost_weight` are searched
with a FLOPs term too (`cost_only`: only with it); that pick must lie on the standalone
accuracy-vs-FLOPs Pareto front (ties within 1 point count as equal accuracy).

    python benchmarks/search_fidelity.py --quick          # minutes, tiny sizes, end to end
    python benchmarks/search_fidelity.py --tasks assoc_recall local_motif --seeds 0 1
Writes benchmarks/out/fidelity[_quick].{md,json}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import yaml

from fidelity_brute import TIE, brute_force_rows, kendall_tau, on_pareto_front
from fidelity_report import markdown
from fidelity_tasks import CANDIDATES, FULL, QUICK, spec_template
from nasgraph.graph import compile_spec
from nasgraph.graph.summary import summarize
from nasgraph.search.evidence import Evidence, Measured
from nasgraph.search.recommend import recommend
from nasgraph.search.run import run_search
from nasgraph.spec import load_spec
from nasgraph.training.run import run_train

OUT = Path(__file__).resolve().parent / "out" / "fidelity"
# a strategy whose method changed since its cached searches: the revision enters their cache key
REVISION = {"teacher": 2,    # 2: paired per-example scores, tie rule, per choice point contrasts
            "teacher_race": 5}   # 2: the race sized to fit under max_cost (measured CPU ledger); 3: untested types race;
#                                      4: the race priced at the steady per-step rate, its contrast in the confidence;
#                                      5: the plan (untested types' race before per-layer students), the race reuses
#                                         the slice and cuts examples before steps, race_short caps the confidence
STRATEGIES = {"halving": {"strategy": "halving"}, "teacher": {"strategy": "teacher"},
              "teacher_race": {"strategy": "teacher_race"},
              "darts": {"strategy": "darts"}, "darts_perturb": {"strategy": "darts", "select": "perturbation"},
              "gdas": {"strategy": "gdas"}, "fixed": {"strategy": "fixed"}}


def label(c) -> str:
    return c if isinstance(c, str) else next(iter(c))


def key_of(data) -> str:
    """The cache key of a spec: its paths under OUT (text data) count relative to OUT, so a copied cache
    folder (--out) still matches."""
    text = json.dumps(data, sort_keys=True).replace(json.dumps(str(OUT))[1:-1], "<out>")
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load(spec: dict, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(path)


def cached(name: str, data: dict, compute) -> dict:
    path = OUT / "cache" / f"{name}-{key_of(data)}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = compute(key_of(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    return result


def train_standalone(spec: dict, seed: int, progress: bool) -> dict:
    spec = {**spec, "train": {**spec["train"], "seed": seed}}

    def compute(key: str) -> dict:
        doc = load(spec, OUT / "specs" / f"{key}.yaml")
        flops = summarize(compile_spec(doc)).flops_max
        out = OUT / "runs" / f"train-{key}"
        cpu = time.process_time()
        r = run_train(doc, out, resume=out.exists(), progress=progress)   # an interrupted run continues
        return {"test": r["test"]["acc"], "val": r["val"]["acc"], "seconds": r["seconds"], "flops": flops,
                "cpu_seconds": time.process_time() - cpu}

    return cached("train", spec, compute)


def run_strategy(spec: dict, seed: int, progress: bool, revision: int | None = None) -> dict:
    def compute(key: str) -> dict:
        doc = load(spec, OUT / "specs" / f"{key}.yaml")
        out = OUT / "runs" / f"search-{key}"
        t0, cpu = time.perf_counter(), time.process_time()
        outcome = run_search(doc, out, resume=out.exists(), progress=progress)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu
        derived = yaml.safe_load((out / "derived.yaml").read_text())
        return {"seconds": seconds, "cpu_seconds": cpu, "labels": outcome["labels"], "choice": outcome["choice"],
                "evidence": json.loads((out / "evidence.json").read_text()), "derived": derived}

    key = {**spec, "bench_seed": seed, **({"revision": revision} if revision else {})}
    return cached("search", key, compute)


def search_ranking(evidence: dict, labels: list[str]) -> list[float] | None:
    """Mean score of each homogeneous candidate in the search's evidence (None if it did not rank them)."""
    by_label = {}
    for m in evidence["measured"]:
        names = {l.split("(")[0] for ls in m["labels"].values() for l in ls}
        if m["kind"] == "homogeneous" and len(names) == 1 and m["scores"]:
            by_label[names.pop()] = statistics.mean(m["scores"])
    return [by_label[l] for l in labels] if all(l in by_label for l in labels) else None


def evaluate_task(name: str, regime: dict, args) -> dict:
    base = spec_template(name, regime, OUT / "data")
    labels = [label(c) for c in CANDIDATES]
    if args.phase == "search":          # fill the search cache only (brute force may run beside it)
        for variant, weight, seed in search_plan(regime, args):
            run_strategy(search_spec(base, variant, weight, seed), seed, args.progress, REVISION.get(variant))
        return {}
    alone, specs = {}, {label(c): {**base, "model": {**base["model"], "attention": {"candidates": [c]}}}
                        for c in CANDIDATES}
    for c in CANDIDATES:
        alone[label(c)] = [train_standalone(specs[label(c)], s, args.progress) for s in args.seeds]
        print(f"[{name}] standalone {label(c)}: test " + ", ".join(f"{r['test']:.4f}" for r in alone[label(c)]),
              flush=True)
    mixes = {"+".join(m): train_mix(base, m, args) for m in args.mixes}
    mean = {l: statistics.mean(r["test"] for r in alone[l]) for l in labels}
    flops = {l: alone[l][0]["flops"] for l in labels}
    ranking = sorted(labels, key=lambda l: -mean[l])
    brute_unit = statistics.mean(r["cpu_seconds"] for runs in alone.values() for r in runs)
    rows = brute_force_rows(name, alone, args.seeds, cost_weights(regime), brute_unit)
    # the unit of a search's cost: standalone trainings measured beside it (CPU time grows with the load)
    one_training = statistics.mean(train_standalone(specs[l], s, args.progress)["cpu_seconds"]
                                   for l in labels for s in args.cost_seeds) if args.cost_seeds else brute_unit
    for variant, weight, seed in search_plan(regime, args):
        r = run_strategy(search_spec(base, variant, weight, seed), seed, args.progress, REVISION.get(variant))
        rows.append(score_row(name, variant, seed, weight, r, base, alone, mean, flops, ranking, one_training, args))
        print(f"[{name}] {variant}{' +cost' if weight else ''} seed {seed}: {rows[-1]['pick']} "
              f"delta {rows[-1]['delta']:+.4f} tau {rows[-1]['tau']} cost {rows[-1]['cost_x']:.2f}x", flush=True)
    return {"regime": regime, "seeds": args.seeds, "standalone": alone, "mixes": mixes, "mean_test": mean, "flops": flops,
            "ranking": ranking, "one_training_cpu_s": one_training, "rows": rows}


def train_mix(base: dict, types: list[str], args) -> list[dict]:
    """A per-layer mix (one candidate label per layer) trained standalone at every seed, as a derived
    spec has it (so a search that picks the same mix reuses these trainings)."""
    by_label = {label(c): c for c in CANDIDATES}
    model = {k: v for k, v in base["model"].items() if k != "attention"}
    model["layers"] = [{"attention": {"candidates": [by_label[t]], "causal": False}} for t in types]
    runs = [train_standalone({**base, "model": model}, s, args.progress) for s in args.seeds]
    print(f"[{base['name']}] standalone mix {'+'.join(types)}: test " + ", ".join(f"{r['test']:.4f}" for r in runs),
          flush=True)
    return runs


def cost_weights(regime: dict) -> list[float | None]:
    """The cost weights a regime is searched with (None: no cost term)."""
    return ([] if regime.get("cost_only") else [None]) + ([regime["cost_weight"]] if regime.get("cost_weight") else [])


def search_plan(regime: dict, args) -> list[tuple[str, float | None, int]]:
    """(strategy variant, cost weight or None, seed) for every search of a regime."""
    return [(v, w, s) for v in args.strategies for w in cost_weights(regime) for s in args.seeds]


def search_spec(base: dict, variant: str, weight: float | None, seed: int) -> dict:
    search = {**STRATEGIES[variant], "seeds": [seed]}
    if weight:
        search["objective"] = {"flops": {"weight": weight}}
    return {**base, "model": {**base["model"], "attention": {"candidates": CANDIDATES}}, "search": search}


def confidence_of(evidence: dict) -> str:
    """The recommendation's confidence for a stored evidence, by the current rule (docs/recommendation.md)."""
    ev = Evidence(**{**evidence, "measured": [Measured(**m) for m in evidence["measured"]]})
    return recommend(ev).confidence


def paired_gaps(evidence: dict) -> dict[str, list[float]]:
    """{architecture: [gap, se]} of the teacher over each student, paired on the same held-out examples."""
    out = {}
    for m in evidence["measured"]:
        drop, se = m["detail"].get("drop"), m["detail"].get("drop_se")
        if drop and se and drop[0] is not None:
            out["; ".join(f"{n.removesuffix('.attention')} {'/'.join(ls)}" for n, ls in m["labels"].items())] = \
                [drop[0], se[0]]
    return out


def race_text(evidence: dict) -> str | None:
    """teacher_race's race at the search's seed in a few words (None for other strategies)."""
    stages = [st for st in evidence.get("stages") or [] if st.get("stage") == "race"]
    if not stages:
        return None
    st = stages[0]
    if not st.get("races"):   # (the first runs' name of the second verdict)
        return {"the pick is not the teacher": "the pick keeps no layer of the teacher's type"}.get(st["verdict"],
                                                                                                   st["verdict"])
    races = "; ".join(f"{r['candidate'].split('(')[0]} {100 * r['diff']:+.1f} +-{100 * (r['se'] or 0):.1f} "
                      f"({r['verdict'].replace('teacher holds', 'pick holds')})"  # its name in the first runs
                      for r in st["races"])
    dropped = f"; {', '.join(st['dropped'])} not raced (max_cost)" if st.get("dropped") else ""
    return f"{races}, {st['steps']} vs {st['teacher_steps']} steps, {st['eval_n']} examples{dropped}"


def ledger_cost(evidence: dict) -> float | None:
    """teacher_race's own measured cost (its budget stage: standalone trainings, up to its pick)."""
    return next((st.get("spent") for st in evidence.get("stages") or [] if st.get("stage") == "budget"), None)


def score_row(name, variant, seed, weight, r, base, alone, mean, flops, ranking, one_training, args) -> dict:
    picks = [l.split("(")[0] for ls in r["labels"].values() for l in ls]
    if len(set(picks)) == 1:
        pick_acc, pick_flops, retrained = mean[picks[0]], flops[picks[0]], None
    else:   # a mixed pick: train it standalone at the same seeds
        spec = {**r["derived"], "name": base["name"], "train": base["train"]}
        retrained = [train_standalone(spec, s, args.progress) for s in args.seeds]
        pick_acc = statistics.mean(x["test"] for x in retrained)
        pick_flops = retrained[0]["flops"]
    rank = 1 + sum(mean[l] > pick_acc + 1e-9 for l in ranking)
    searched = search_ranking(r["evidence"], ranking)
    tau = round(kendall_tau(searched, [mean[l] for l in ranking]), 3) if searched else None
    pareto = on_pareto_front(pick_acc, pick_flops, mean, flops)
    return {"task": name, "strategy": variant, "seed": seed, "cost_weight": weight,
            "pick": "+".join(picks), "rank": rank, "delta": pick_acc - mean[ranking[0]],
            "within_1pt": pick_acc >= mean[ranking[0]] - TIE, "tau": tau, "pareto": pareto,
            "cost_x": r["cpu_seconds"] / one_training, "wall_x": r["seconds"] / one_training,
            "flops_x": pick_flops / max(flops.values()), "confidence": confidence_of(r["evidence"]),
            "gaps": paired_gaps(r["evidence"]), "retrained": retrained, "race": race_text(r["evidence"]),
            "ledger_x": ledger_cost(r["evidence"])}


def main() -> None:
    global OUT
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the whole suite in minutes")
    ap.add_argument("--tasks", nargs="+", choices=list(FULL))
    ap.add_argument("--strategies", nargs="+", default=["teacher_race", "teacher", "halving", "darts", "darts_perturb"],
                    choices=list(STRATEGIES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--mixes", nargs="*", default=[], type=lambda v: v.split("+"),
                    help="per-layer mixes also trained standalone, e.g. softmax+local (the heterogeneous check)")
    ap.add_argument("--phase", choices=["all", "standalone", "search"], default="all",
                    help="standalone / search: fill that cache only (two processes can share the work)")
    ap.add_argument("--cost-seeds", type=int, nargs="+",
                    help="the seeds of the standalone trainings whose mean CPU time is the unit of a search's "
                         "cost (default: --seeds); trainings run beside the searches, under the same load")
    ap.add_argument("--progress", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT, help=f"cache and run folder (default {OUT})")
    args = ap.parse_args()
    OUT = args.out.resolve()
    regimes = QUICK if args.quick else FULL
    if missing := [t for t in args.tasks or [] if t not in regimes]:
        ap.error(f"--quick has no regime {', '.join(missing)}; valid: {', '.join(regimes)}")
    if args.phase == "standalone":
        args.strategies = []
    results = {}
    tag = "_quick" if args.quick else ""
    for name in args.tasks or list(regimes):
        results[name] = evaluate_task(name + tag, regimes[name], args)
        if not results[name]:
            continue
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT.parent / f"fidelity{tag}.json").write_text(json.dumps(results, indent=1, default=str))
        (OUT.parent / f"fidelity{tag}.md").write_text(markdown(results, args))
    if any(results.values()):
        print(markdown({k: v for k, v in results.items() if v}, args))


if __name__ == "__main__":
    main()
