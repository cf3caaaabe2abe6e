"""Issue 14 targets for the elastic (mixFormer) search, on byte-level language modelling (a task where
sub-networks of different size really differ: bits per byte moves with capacity, and per-sequence
losses give small paired errors), at a size the shared CPU allows:

1. ranking: Kendall tau between the sandwich supernet's scores of `rank` sub-networks (stratified by
   FLOPs, drawn before any training) and their standalone training, target >= 0.5; also after a short
   per-sub-network fine-tune from the shared weights (HAT / OFA), its steps counted;
2. at the measured ONNX Runtime latency of the hand-written spec (specs/lm_bytes.yaml with softmax
   attention), the searched pick retrained vs that spec, at `seeds` seeds, paired test difference.
(The latency predictor's held-out error: benchmarks/elastic_latency.py.)

Text: the installed torch package's .py sources (benchmarks/lm_tasks.py); every training uses the
same steps, batch and lr; the supernet's sandwich training as many steps.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/elastic_search.py     # ~1 h on 2 shared cores
    python benchmarks/elastic_search.py --quick                                 # minutes, end to end
Writes benchmarks/out/elastic[_quick].{json,md}; reruns reuse finished runs in the out folder.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from elastic_report_md import summary  # noqa: E402
from lm_tasks import default_text  # noqa: E402

from exporters.subnet_latency import onnx_latency_ms  # noqa: E402
from nasgraph import tasks  # noqa: E402
from nasgraph.api import search, train  # noqa: E402
from nasgraph.elastic import ElasticSupernet  # noqa: E402
from nasgraph.graph import compile_spec  # noqa: E402
from nasgraph.graph.elastic import compile_subnet  # noqa: E402
from nasgraph.graph.subnet import SubNet, attention_candidates  # noqa: E402
from nasgraph.graph.summary import summarize  # noqa: E402
from nasgraph.model import GraphModule  # noqa: E402
from nasgraph.search.elastic_run import derive_subnet  # noqa: E402
from nasgraph.search.paired import example_scores, paired_over_seeds  # noqa: E402
from nasgraph.search.ranking import rank_agreement, stratified_sample  # noqa: E402
from nasgraph.spec import dump_spec, load_spec  # noqa: E402
from nasgraph.training.data import BatchStream  # noqa: E402
from nasgraph.training.losses import task_loss  # noqa: E402
from nasgraph.training.run import load_trained  # noqa: E402

ROOT = Path(__file__).resolve().parent
HAND = ROOT.parent / "specs" / "lm_bytes.yaml"
FULL = {"text_bytes": 1_000_000, "max_len": 64, "batch": 16, "steps": 600, "search_steps": 600, "rank": 8,
        "finetune": 40, "eval_n": 400, "latency_samples": 16, "population": 12, "generations": 4, "parents": 4,
        "score_batches": 8, "seeds": [0, 1]}
QUICK = {"text_bytes": 60_000, "max_len": 16, "batch": 8, "steps": 6, "search_steps": 6, "rank": 3, "finetune": 2,
         "eval_n": 24, "latency_samples": 5, "population": 4, "generations": 2, "parents": 2, "score_batches": 2,
         "seeds": [0]}
SPACE = {"d_model": {"choices": [64, 96, 128, 160]}, "n_heads": {"choices": [2, 4]}, "n_layers": {"choices": [2, 3, 4]}}


def hand_raw(size: dict) -> dict:
    raw = yaml.safe_load(HAND.read_text())
    raw["task"].update(path=str(default_text(size["text_bytes"])), max_len=size["max_len"],
                       max_bytes=size["text_bytes"])
    raw["train"].update(steps=size["steps"], batch_size=size["batch"], eval_every=size["steps"],
                        checkpoint_every=size["steps"], warmup_steps=min(100, size["steps"] // 6))
    raw["model"]["attention"] = "softmax"
    raw.pop("search", None)
    return raw


def elastic_raw(size: dict, budget_ms: float) -> dict:
    raw = hand_raw(size)
    raw["name"] = "lm-elastic"
    raw["model"].update(SPACE, attention=["softmax", "linear"])
    raw["model"]["ffn"]["mult"] = {"choices": [1, 2, 4]}
    raw["search"] = {"strategy": "evolution", "seeds": [0], "steps": size["search_steps"],
                     "score_batches": size["score_batches"], "population": size["population"],
                     "generations": size["generations"], "parents": size["parents"],
                     "latency_samples": size["latency_samples"], "budget": {"latency_ms": round(budget_ms, 4)}}
    return raw


def write(raw: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    dump_spec(raw, path, overwrite=True)
    return path


def trained(spec: Path, out: Path, seed: int = 0) -> Path:
    """The finished train run of `spec` in `out` (trained here, or waited for while a --worker trains it)."""
    while (out.parent / f"{out.name}.busy").exists() and not (out / "result.json").exists():
        time.sleep(10)
    if not (out / "result.json").exists():
        train(spec, out, progress=False, overrides=[f"train.seed={seed}"], force=True)
    return out


def rank_sample(size: dict, space: dict, build) -> list[SubNet]:
    """The ranking's sub-networks: stratified by FLOPs, drawn before anything is trained."""
    flops = lambda sub: float(summarize(build(sub)).flops_shared)  # noqa: E731
    return stratified_sample(space, flops, size["rank"], random.Random(11), pool=200)


def worker(size: dict, out: Path, which: str) -> None:
    """Train standalone runs the main run reads, beside it: 'hand' (every seed) or 'rank:I/N' (every N-th
    sub-network of the ranking sample from the I-th; needs the search's spec.yaml, written at its start)."""
    jobs = []
    if which == "hand":
        jobs = [(out / "hand.yaml", out / f"hand_s{seed}", seed) for seed in size["seeds"]]
    else:
        i, n = map(int, which.split(":")[1].split("/"))
        doc = load_spec(out / "search" / "spec.yaml")
        graph = compile_spec(doc)
        subs = rank_sample(size, graph.graph["elastic"], lambda sub: compile_subnet(doc, graph, sub))
        for k in range(i, len(subs), n):
            path = write(derive_subnet(doc.raw, graph, subs[k]), out / "rank" / f"sub{k}.yaml")
            jobs.append((path, out / "rank" / f"sub{k}", 0))
    for spec, run, seed in jobs:
        busy = run.parent / f"{run.name}.busy"
        if (run / "result.json").exists() or busy.exists():
            continue
        busy.write_text("training\n")
        try:
            train(spec, run, progress=False, overrides=[f"train.seed={seed}"], force=True)
        finally:
            busy.unlink()


def scores_of(model, split, task, batch: int) -> dict:
    return example_scores(model.eval(), split, batch, task)


def finetune(model, train_split, lr: float, steps: int, batch: int, seed: int):
    """`steps` AdamW steps of a sub-network extracted from the supernet (HAT / OFA's short fine-tune)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    stream = BatchStream(train_split, batch, seed, "train")
    model.train()
    for _ in range(steps):
        tokens, labels = stream.next()
        opt.zero_grad(set_to_none=True)
        task_loss(model(tokens), labels).backward()
        opt.step()
    return model.eval()


def predictor_check(run: Path, front: list[dict]) -> dict:
    """The latency predictor on the front points it was not fit to (each exported and timed by the search)."""
    lat = json.loads((run / "latency.json").read_text())
    fitted = {json.dumps(x["subnet"], sort_keys=True) for x in lat["samples"]}
    subnets = {p["point"]: q["subnet"] for p, q in zip(front, json.loads((run / "search.json").read_text())["front"])}
    held = [{"subnet": p["label"], "ms": p["latency_ms_measured"], "predicted": p["latency_ms_predicted"]}
            for p in front if json.dumps(subnets[p["point"]], sort_keys=True) not in fitted]
    errors = sorted(abs(h["predicted"] - h["ms"]) / h["ms"] for h in held)
    return {"fit_samples": len(lat["samples"]), "cv_median_rel_error": lat["cv_median_rel_error"],
            "loo_median_rel_error": lat["model"].get("loo_median_rel_error"), "held_out": held,
            "median_rel_error": errors[len(errors) // 2] if len(errors) % 2 else
            (sum(errors[len(errors) // 2 - 1:len(errors) // 2 + 1]) / 2 if errors else None)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", help="only train standalone runs the main run reads, beside it (more cores): "
                                     "'hand' or 'rank:I/N'")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds of the pick vs hand-written retraining")
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    size = {**size, "seeds": args.seeds or size["seeds"]}
    out = args.out or ROOT / "out" / ("elastic_quick" if args.quick else "elastic")
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(size, out, args.worker)
    t0, report = time.perf_counter(), {"size": size, "space": SPACE, "hand_spec": "specs/lm_bytes.yaml, softmax"}
    cpu0 = time.process_time()

    hand = write(hand_raw(size), out / "hand.yaml")
    hand_ms = onnx_latency_ms(GraphModule(compile_spec(load_spec(hand))), seq_len=size["max_len"])
    spec = write(elastic_raw(size, hand_ms), out / "elastic.yaml")
    run = out / "search"
    if not (run / "search.json").exists():
        search(spec, run, progress=False, resume=run.exists())
    outcome = json.loads((run / "search.json").read_text())
    doc = load_spec(run / "spec.yaml")
    graph = compile_spec(doc)
    cands, space = attention_candidates(graph), graph.graph["elastic"]
    build = lambda sub: compile_subnet(doc, graph, sub)  # noqa: E731
    supernet = ElasticSupernet(GraphModule(graph), space, build)
    supernet.supernet.load_state_dict(torch.load(run / "supernet.pt", weights_only=True))
    supernet.eval()
    config = tasks.parse_task(doc.spec.task)
    task, data = tasks.get(config.kind)(config), tasks.load_task(config)
    val = data.splits["val"].subset(list(range(min(size["eval_n"], len(data.splits["val"])))))
    B, lr = size["batch"], doc.spec.train.lr

    # 1. ranking: sub-networks stratified by FLOPs, supernet (and fine-tuned) scores vs standalone
    flops = lambda sub: float(summarize(build(sub)).flops_shared)  # noqa: E731
    subs = rank_sample(size, space, build)
    rows, est, tuned, truth = [], [], [], []
    for k, sub in enumerate(subs):
        est.append(scores_of(supernet.extract(sub), val, task, B))
        tuned.append(scores_of(finetune(supernet.extract(sub), data.splits["train"], lr, size["finetune"], B, k),
                               val, task, B))
        path = write(derive_subnet(doc.raw, graph, sub), out / "rank" / f"sub{k}.yaml")
        truth.append(scores_of(load_trained(trained(path, out / "rank" / f"sub{k}"))[1], val, task, B))
        rows.append({"subnet": sub.label(cands), "flops": flops(sub), "supernet": est[-1]["score"],
                     "finetuned": tuned[-1]["score"], "standalone": truth[-1]["score"]})
        print(f"rank {k}: {rows[-1]}", flush=True)
    report["ranking"] = {"metric": task.score_name, "eval_n": len(val), "rows": rows,
                         "supernet": rank_agreement(est, truth), "finetuned": rank_agreement(tuned, truth)}

    # 2. the pick (within the hand-written spec's measured latency) retrained vs the hand-written spec
    pick = SubNet.from_json(outcome["subnet"])
    test = data.splits["test"]
    pick_rec, hand_rec = [], []
    for seed in size["seeds"]:
        pick_rec.append(scores_of(load_trained(trained(run / "derived.yaml", out / f"pick_s{seed}", seed))[1],
                                  test, task, B))
        hand_rec.append(scores_of(load_trained(trained(hand, out / f"hand_s{seed}", seed))[1], test, task, B))
    diff = paired_over_seeds(pick_rec, hand_rec)
    report["pick"] = {"subnet": pick.label(cands), "test": [r["score"] for r in pick_rec],
                      "latency_ms_measured": onnx_latency_ms(GraphModule(build(pick)), seq_len=size["max_len"]),
                      "latency_ms_predicted": next((p["latency_ms"] for p in outcome["front"] if p["pick"]), None)}
    report["hand"] = {"test": [r["score"] for r in hand_rec], "latency_ms_measured": hand_ms}
    report["pick_minus_hand"] = {"mean": diff[0], "se": diff[1], "seeds": diff[2]} if diff else None
    report["front"] = json.loads((run / "recommendation.json").read_text())["front"]
    report["latency"] = predictor_check(run, report["front"])
    report["seconds"], report["cpu_seconds"] = round(time.perf_counter() - t0), round(time.process_time() - cpu0)
    (out.parent / f"{out.name}.json").write_text(json.dumps(report, indent=1))
    (out.parent / f"{out.name}.md").write_text(summary(report))
    print(summary(report))


if __name__ == "__main__":
    main()
