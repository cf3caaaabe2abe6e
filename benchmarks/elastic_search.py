"""Issue 14 targets for the elastic (mixFormer) search, on byte-level language modelling (a task where
sub-networks of different size really differ: bits per byte moves with capacity, and per-sequence
losses give small paired errors), at a size the shared CPU allows:

1. ranking: Kendall tau between the sandwich supernet's scores of `rank` sub-networks (stratified by
   FLOPs, drawn before any training) and their standalone training, target >= 0.5; also after a short
   per-sub-network fine-tune from the shared weights (HAT / OFA), its steps counted;
2. at the measured ONNX Runtime latency of the hand-written spec (specs/lm_bytes.yaml with softmax
   attention), the searched pick retrained vs that spec, at `seeds` seeds, paired test difference.
(The latency predictor's held-out error: benchmarks/elastic_latency.py.)

Text: the installed torch package's .py sources (benchmarks/lm_tasks.py); every training uses the same
batch and lr; the supernet trains `search_steps`, the ranking's standalone runs `rank_steps`, the pick
and the hand-written spec `pick_steps` (sized to the shared CPU). Phases run in parallel with --worker.

    OMP_WAIT_POLICY=PASSIVE nice -n 10 python benchmarks/elastic_search.py     # hours on 2 loaded cores
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
from elastic_measure import over_seeds, predictor_check, side_by_side  # noqa: E402
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
from nasgraph.search.paired import example_scores, paired_difference  # noqa: E402
from nasgraph.search.ranking import rank_agreement, stratified_sample  # noqa: E402
from nasgraph.spec import dump_spec, load_spec  # noqa: E402
from nasgraph.training.data import BatchStream  # noqa: E402
from nasgraph.training.losses import task_loss  # noqa: E402
from nasgraph.training.run import load_trained  # noqa: E402

ROOT = Path(__file__).resolve().parent
HAND = ROOT.parent / "specs" / "lm_bytes.yaml"
FULL = {"text_bytes": 1_000_000, "max_len": 64, "batch": 16, "steps": 600, "search_steps": 600, "rank": 8,
        "rank_steps": 200, "pick_steps": 200, "finetune": 40, "eval_n": 200, "latency_samples": 16, "population": 12, "generations": 4, "parents": 4,
        "score_batches": 8, "seeds": [0, 1]}
QUICK = {"text_bytes": 60_000, "max_len": 16, "batch": 8, "steps": 6, "search_steps": 6, "rank": 3, "rank_steps": 4,
         "pick_steps": 4,
         "finetune": 2,
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


def steps_override(steps: int) -> list[str]:
    return [f"train.steps={steps}", f"train.eval_every={steps}", f"train.checkpoint_every={steps}",
            f"train.warmup_steps={min(100, steps // 6)}"]


def trained(spec: Path, out: Path, seed: int = 0, overrides: list[str] = ()) -> Path:
    """The finished train run of `spec` in `out` (trained here, or waited for while a --worker trains it)."""
    busy = out.parent / f"{out.name}.busy"
    while busy.exists() and not (out / "result.json").exists():
        time.sleep(10)
    if not (out / "result.json").exists():
        busy.write_text("training\n")
        try:
            train(spec, out, progress=False, overrides=[f"train.seed={seed}", *overrides], force=True)
        finally:
            busy.unlink()
    return out


def rank_sample(size: dict, space: dict, build) -> list[SubNet]:
    """The ranking's sub-networks: stratified by FLOPs, drawn before anything is trained."""
    flops = lambda sub: float(summarize(build(sub)).flops_shared)  # noqa: E731
    return stratified_sample(space, flops, size["rank"], random.Random(11), pool=200)


class Setup:
    """What every phase reads: the search's spec and space, the data, the ranking sample."""

    def __init__(self, size: dict, out: Path):
        self.size, self.out, self.run = size, out, out / "search"
        self.doc = load_spec(self.run / "spec.yaml")                   # written when the search starts
        self.graph = compile_spec(self.doc)
        self.space, self.cands = self.graph.graph["elastic"], attention_candidates(self.graph)
        self.build = lambda sub: compile_subnet(self.doc, self.graph, sub)  # noqa: E731
        self.subs = rank_sample(size, self.space, self.build)
        config = tasks.parse_task(self.doc.spec.task)
        self.task, self.data = tasks.get(config.kind)(config), tasks.load_task(config)
        val = self.data.splits["val"]
        self.val = val.subset(list(range(min(size["eval_n"], len(val)))))

    def standalone(self, k: int) -> Path:
        """Sub-network k trained on its own for rank_steps steps (seed 0)."""
        raw = derive_subnet(self.doc.raw, self.graph, self.subs[k])
        steps = self.size["rank_steps"]
        raw["train"].update(steps=steps, eval_every=steps, checkpoint_every=steps, warmup_steps=min(100, steps // 6))
        return trained(write(raw, self.out / "rank" / f"sub{k}.yaml"), self.out / "rank" / f"sub{k}")

    def scores(self, k: int) -> dict:
        """Sub-network k's examples records on the validation slice: supernet, fine-tuned, standalone."""
        path = self.out / "rank" / f"sub{k}.scores.json"
        if path.exists():
            return json.loads(path.read_text())
        while not (self.run / "supernet.pt").exists():
            time.sleep(20)
        supernet = ElasticSupernet(GraphModule(self.graph), self.space, self.build)
        supernet.supernet.load_state_dict(torch.load(self.run / "supernet.pt", weights_only=True))
        supernet.eval()
        sub, B, lr = self.subs[k], self.size["batch"], self.doc.spec.train.lr
        tuned = finetune(supernet.extract(sub), self.data.splits["train"], lr, self.size["finetune"], B, k)
        rec = {"subnet": sub.label(self.cands), "flops": float(summarize(self.build(sub)).flops_shared),
               "supernet": scores_of(supernet.extract(sub), self.val, self.task, B),
               "finetuned": scores_of(tuned, self.val, self.task, B),
               "standalone": scores_of(load_trained(self.standalone(k))[1], self.val, self.task, B)}
        path.write_text(json.dumps(rec))
        return rec


def worker(size: dict, out: Path, which: str) -> None:
    """Phases beside the main run (more cores on a shared machine), resumable by their files:
    'rank:I/N' trains every N-th sub-network of the ranking sample from the I-th, 'score:I/N' scores them
    (waits for the supernet), 'hand' trains the hand-written spec at every seed, 'pick' the search's pick
    (waits for it)."""
    if which == "hand":
        for seed in size["seeds"]:
            trained(out / "hand.yaml", out / f"hand_s{seed}", seed, steps_override(size["pick_steps"]))
        return
    if which == "pick":                         # as soon as the search has written its pick
        while not (out / "search" / "derived.yaml").exists():
            time.sleep(20)
        for seed in size["seeds"]:
            trained(out / "search" / "derived.yaml", out / f"pick_s{seed}", seed, steps_override(size["pick_steps"]))
        return
    kind, share = which.split(":")
    i, n = map(int, share.split("/"))
    setup = Setup(size, out)
    for k in range(i, len(setup.subs), n):
        setup.standalone(k) if kind == "rank" else setup.scores(k)


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--worker", help="one phase beside the main run (more cores): 'rank:I/N', 'score:I/N', 'hand', "
                                     "'pick'")
    ap.add_argument("--seeds", type=int, nargs="+", help="seeds of the pick vs hand-written retraining")
    ap.add_argument("--no-search", action="store_true", help="report the ranking from the supernet alone, without "
                                                             "waiting for the search's end (pick, front, predictor)")
    args = ap.parse_args()
    size = QUICK if args.quick else FULL
    size = {**size, "seeds": args.seeds or size["seeds"]}
    out = args.out or ROOT / "out" / ("elastic_quick" if args.quick else "elastic")
    out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        return worker(size, out, args.worker)
    t0, cpu0 = time.perf_counter(), time.process_time()
    report = {"size": size, "space": SPACE, "hand_spec": "specs/lm_bytes.yaml, softmax"}

    hand, spec, run = out / "hand.yaml", out / "elastic.yaml", out / "search"
    if spec.exists():                           # measured once: a resumed search needs the same budget
        hand_ms = yaml.safe_load(spec.read_text())["search"]["budget"]["latency_ms"]
    else:
        write(hand_raw(size), hand)
        hand_ms = onnx_latency_ms(GraphModule(compile_spec(load_spec(hand))), seq_len=size["max_len"])
        write(elastic_raw(size, hand_ms), spec)
    if not args.no_search and not (run / "search.json").exists():
        search(spec, run, progress=False, resume=run.exists())
    setup = Setup(size, out)

    # 1. ranking: sub-networks stratified by FLOPs, supernet (and fine-tuned) scores vs standalone
    recs = [setup.scores(k) for k in range(len(setup.subs))]
    report["ranking"] = {
        "metric": setup.task.score_name, "eval_n": len(setup.val),
        "rows": [{"subnet": r["subnet"], "flops": r["flops"],
                  **{k: r[k]["score"] for k in ("supernet", "finetuned", "standalone")}} for r in recs],
        **{k: rank_agreement([r[k] for r in recs], [r["standalone"] for r in recs]) for k in ("supernet", "finetuned")}}

    # 2. the pick (within the hand-written spec's measured latency) retrained vs the hand-written spec
    if (run / "search.json").exists():
        outcome = json.loads((run / "search.json").read_text())
        pick, B, test = SubNet.from_json(outcome["subnet"]), size["batch"], setup.data.splits["test"]
        model = lambda path: load_trained(path)[1]  # noqa: E731
        steps = steps_override(size["pick_steps"])
        pick_rec = [scores_of(model(trained(run / "derived.yaml", out / f"pick_s{s}", s, steps)), test, setup.task, B)
                    for s in size["seeds"]]
        hand_rec = [scores_of(model(trained(hand, out / f"hand_s{s}", s, steps)), test, setup.task, B)
                    for s in size["seeds"]]
        diff = over_seeds([paired_difference(a, b) for a, b in zip(pick_rec, hand_rec)])
        timed = out / "side_by_side.json"
        if not timed.exists():
            timed.write_text(json.dumps(side_by_side([GraphModule(setup.build(pick)),
                                                      GraphModule(compile_spec(load_spec(hand)))], size["max_len"])))
        pick_ms, hand_now = json.loads(timed.read_text())
        report["pick"] = {"subnet": pick.label(setup.cands), "test": [r["score"] for r in pick_rec],
                          "latency_ms_measured": pick_ms,
                          "latency_ms_predicted": next((p["latency_ms"] for p in outcome["front"] if p["pick"]), None)}
        report["hand"] = {"test": [r["score"] for r in hand_rec], "latency_ms_measured": hand_now,
                          "budget_ms": hand_ms}
        report["pick_minus_hand"] = {"mean": diff[0], "se": diff[1], "seeds": diff[2]} if diff else None
        report["front"] = json.loads((run / "recommendation.json").read_text())["front"]
        report["latency"] = predictor_check(run, report["front"])
    report["seconds"], report["cpu_seconds"] = round(time.perf_counter() - t0), round(time.process_time() - cpu0)
    (out.parent / f"{out.name}.json").write_text(json.dumps(report, indent=1))
    (out.parent / f"{out.name}.md").write_text(summary(report))
    print(summary(report))


if __name__ == "__main__":
    main()
