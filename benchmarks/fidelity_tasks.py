"""The task regimes of benchmarks/search_fidelity.py, each in a full and a --quick size.

Every regime is one spec template: task, model (d_model 64, 4 heads, 2 layers unless said), training
budget of one standalone model. `text_synth` writes its data locally (nothing is downloaded): short
byte-level reviews whose label is the sign of their sentiment words, with negations that flip the
next sentiment word.
"""
from __future__ import annotations

import csv
import random
from pathlib import Path

CANDIDATES = ["softmax", "linear", {"local": {"window": 16}}]

FULL = {
    # the regime that separates types on CPU (shared/toolchain.md), cut to what 2 shared cores allow
    "listops": {"task": {"kind": "listops", "max_len": 101, "min_len": 20, "max_depth": 3, "n_train": 200_000,
                         "n_val": 1000, "n_test": 2000},
                "model": {"pooling": "cls"}, "train": {"steps": 3000, "batch_size": 32}},
    # softmax wins, linear and local fail (the query sits max_len - 1 tokens from <cls>)
    "assoc_recall": {"task": {"kind": "assoc_recall", "max_len": 64, "n_pairs": 4, "n_keys": 8, "n_values": 4,
                              "n_train": 50_000, "n_val": 1000, "n_test": 2000},
                     "model": {"pooling": "cls"}, "train": {"steps": 1000, "batch_size": 32}},
    # only local structure at T = 512: local ties softmax at a fraction of the cost
    "local_motif": {"task": {"kind": "local_motif", "max_len": 512, "n_train": 8000, "n_val": 500, "n_test": 1000},
                    "model": {"pooling": "mean", "d_model": 32, "n_heads": 2},
                    "train": {"steps": 800, "batch_size": 8}, "cost_weight": 0.5, "cost_only": True},
    "text_synth": {"task": {"kind": "text", "max_len": 256, "n_examples": 12_000},
                   "model": {"pooling": "mean"}, "train": {"steps": 1500, "batch_size": 16}},
}

QUICK = {
    "assoc_recall": {"task": {**FULL["assoc_recall"]["task"], "max_len": 24, "n_pairs": 2, "n_train": 3000,
                              "n_val": 200, "n_test": 300},
                     "model": {"pooling": "cls", "d_model": 32, "n_heads": 2}, "train": {"steps": 150, "batch_size": 32}},
    "local_motif": {"task": {"kind": "local_motif", "max_len": 64, "n_symbols": 6, "n_train": 1500, "n_val": 200,
                             "n_test": 300},
                    "model": {"pooling": "mean", "d_model": 32, "n_heads": 2},
                    "train": {"steps": 150, "batch_size": 16}, "cost_weight": 0.5},
    "text_synth": {"task": {"kind": "text", "max_len": 96, "n_examples": 2000},
                   "model": {"pooling": "mean", "d_model": 32, "n_heads": 2}, "train": {"steps": 150, "batch_size": 16}},
    "listops": {"task": {**FULL["listops"]["task"], "max_len": 48, "n_train": 3000, "n_val": 200, "n_test": 300},
                "model": {"pooling": "cls", "d_model": 32, "n_heads": 2}, "train": {"steps": 150, "batch_size": 32}},
}

POSITIVE = ["good", "great", "superb", "lovely", "fine", "brilliant", "fun", "moving"]
NEGATIVE = ["bad", "awful", "dull", "poor", "boring", "weak", "messy", "flat"]
NEGATIONS = ["not", "never", "hardly"]
FILLER = ("the a this film movie plot cast story scene was is and but with it of to in acting music ending "
          "script actor director really quite very so overall at times felt seemed look").split()


def synth_review(rng: random.Random) -> tuple[str, str]:
    """40-45 words; 1, 3 or 5 sentiment words, each negated with probability 0.4; label = sign of the sum."""
    words = [rng.choice(FILLER) for _ in range(rng.randint(30, 40))]
    total = 0
    for _ in range(rng.choice([1, 3, 5])):
        positive, negated = rng.random() < 0.5, rng.random() < 0.4
        phrase = ([rng.choice(NEGATIONS)] if negated else []) + [rng.choice(POSITIVE if positive else NEGATIVE)]
        total += (1 if positive else -1) * (-1 if negated else 1)
        at = rng.randint(0, len(words))
        words[at:at] = phrase
    return " ".join(words), "pos" if total > 0 else "neg"


def write_text_data(folder: Path, n: int, seed: int = 0) -> Path:
    """A CSV of n synthetic reviews (text,label) in `folder`, written once."""
    path = folder / f"text_synth_{n}_{seed}.csv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        rng = random.Random(seed)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["text", "label"])
            for _ in range(n):
                w.writerow(synth_review(rng))
        tmp.replace(path)
    return path


def spec_template(name: str, regime: dict, data_dir: Path) -> dict:
    """The regime as a spec (candidates filled in by the caller)."""
    task = dict(regime["task"])
    if task["kind"] == "text":
        n = task.pop("n_examples")
        task.update(path=str(write_text_data(data_dir, n)), val_fraction=0.1, test_fraction=0.15)
    model = {"d_model": 64, "n_heads": 4, "n_layers": 2, "ffn": {"mult": 2}, **regime["model"]}
    steps = regime["train"]["steps"]
    train = {"lr": 1e-3, "eval_every": max(1, steps // 4), "checkpoint_every": steps, "threads": 1,
             **regime["train"]}
    return {"name": name, "task": task, "model": model, "train": train}
