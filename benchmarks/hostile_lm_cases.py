"""Hostile commands of the language-model side (used by hostile_commands.py): `generate` with odd prompts
and options, `export --quantize` / tolerance values, teacher_race keys out of range through --set, an
lm task on missing / empty / binary / latin-1 text and damaged vocabularies, LM / MQAR options that
disagree, `bench --decode` past the limits, n_kv_heads that cannot divide the heads."""
from __future__ import annotations

import random
import shutil
import textwrap
from pathlib import Path

LM = """
name: tiny-lm
task: {kind: lm, path: text.txt, max_len: 16}
model: {d_model: 16, n_heads: 2, n_layers: 1, ffn: {mult: 2}, attention: softmax}
train: {steps: 2, batch_size: 4, eval_every: 2, eval_batches: 1}
"""
MQAR = """
name: tiny-mqar
task: {kind: mqar, max_len: 24, n_pairs: 4, n_keys: 8, n_values: 8, n_train: 64, n_val: 16, n_test: 16}
model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}
train: {steps: 2, batch_size: 8, eval_every: 2}
"""
FILES = {"empty.txt": b"", "latin1.txt": "caf\u00e9 na\u00efve ".encode("latin-1") * 300,
         "dup.json": b'["ab", "ab"]', "single.json": b'["a"]', "torn.json": b"[\"ab\", ", "none.json": b"[]",
         "vocab.bin": bytes(range(256))}


def lm_cases(w: Path, Case, nasgraph) -> list:
    """Fixtures in `w` (a trained tiny LM, its export, a run folder without weights) and the cases."""
    (w / "lm.yaml").write_text(textwrap.dedent(LM))
    (w / "mq.yaml").write_text(textwrap.dedent(MQAR))
    (w / "lm-nope.yaml").write_text(textwrap.dedent(LM).replace("path: text.txt", "path: nope.txt"))
    rng = random.Random(0)
    (w / "text.txt").write_text("".join(rng.choice("abcd efgh\n") for _ in range(4000)))
    (w / "noise.txt").write_bytes(bytes(rng.randrange(256) for _ in range(4000)))
    for name, data in FILES.items():
        (w / name).write_bytes(data)
    for argv in (["train", "lm.yaml", "--out", "lmrun", "--no-progress"], ["export", "lmrun", "-o", "lm.onnx"]):
        proc = nasgraph(argv, w, 600)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    shutil.copytree(w / "lmrun", w / "noweights")
    shutil.rmtree(w / "noweights" / "checkpoints")

    def gen(*extra: str, model: str = "lmrun") -> list[str]:
        return ["generate", model, "--max-new-tokens", "3", *extra]

    def lm(*sets: str, out: str = "lmnew") -> list[str]:   # a case that trains gives its own --out
        return ["train", "lm.yaml", "--out", out, "--no-progress", *[a for s in sets for a in ("--set", s)]]

    exp = lambda *extra: ["export", "lmrun", "-o", "q.onnx", "--no-progress", *extra]  # noqa: E731
    race = lambda s: ["search", "s.yaml", "--out", "race", "--no-progress",  # noqa: E731
                      "--set", "search.strategy=teacher_race", "--set", s]
    return [
        # generate
        Case("lm: generate --max-new-tokens 0", ["generate", "lmrun", "--prompt", "ab", "--max-new-tokens", "0"], [],
             ["lmrun"], expect=0),
        Case("lm: generate --max-new-tokens -5", ["generate", "lmrun", "--max-new-tokens", "-5"], ["max_new_tokens"]),
        Case("lm: generate a prompt past max_len", gen("--prompt", "abcd " * 20), [], ["lmrun"], expect=0),
        Case("lm: generate control-byte prompt (onnx)", gen("--prompt", "\x01\x7f\u00e9", model="lm.onnx"), [],
             ["lm.onnx"], expect=0),
        Case("lm: generate --temperature nan", gen("--temperature", "nan"), ["temperature"], ["lmrun"]),
        Case("lm: generate --seed -1", gen("--temperature", "1", "--seed", "-1"), ["seed"], ["lmrun"]),
        Case("lm: generate --top-k 0", gen("--temperature", "1", "--top-k", "0"), ["top_k"]),
        Case("lm: generate --threads -2 (onnx)", gen("--threads", "-2", model="lm.onnx"), ["threads"]),
        Case("lm: generate --provider foo (onnx)", gen("--provider", "foo", model="lm.onnx"), ["foo"]),
        Case("lm: generate a run folder without weights", gen(model="noweights"), ["noweights"], ["noweights"]),
        Case("lm: generate a classifier run", gen(model="run"), ["run"], ["run"]),
        Case("lm: generate a spec file", gen(model="lm.yaml"), ["lm.yaml"], ["lm.yaml"]),
        Case("lm: generate --provider cuda (run folder, no CUDA)", gen("--provider", "cuda"), ["--provider cuda"],
             ["lmrun"]),
        Case("lm: generate --provider foo (run folder)", gen("--provider", "foo"), ["foo"], ["lmrun"]),
        Case("lm: generate --threads -1 (run folder)", gen("--threads", "-1"), ["--threads"], ["lmrun"]),
        Case("lm: generate --full-forward on the step graph", gen("--full-forward", model="lm.step.onnx"),
             ["lm.step.onnx"], ["lm.step.onnx"]),
        Case("lm: generate --json 10^9 tokens", ["generate", "lmrun", "--json", "--max-new-tokens", "1000000000"],
             ["--json"], ["lmrun"]),
        Case("lm: generate a non-UTF-8 prompt", gen("--prompt", "ab\udcff\udcfe"), [], ["lmrun"], expect=0),
        Case("lm: generate 300 tokens past max_len 16", ["generate", "lm.onnx", "--max-new-tokens", "300"], [],
             ["lm.onnx"], expect=0),
        # export --quantize and tolerances
        Case("lm: export --quantize int4", exp("--quantize", "int4"), ["--quantize"], ["lmrun"]),
        Case("lm: export --max-accuracy-drop nan", exp("--quantize", "int8", "--max-accuracy-drop", "nan"),
             ["--max-accuracy-drop"], ["lmrun"]),
        Case("lm: export --max-accuracy-drop -1", exp("--quantize", "int8", "--max-accuracy-drop", "-1"),
             ["--max-accuracy-drop"], ["lmrun"]),
        Case("lm: export --atol nan", exp("--atol", "nan"), ["--atol"], ["lmrun"]),
        Case("lm: export -o the existing onnx", ["export", "lmrun", "-o", "lm.onnx"], ["lm.onnx"], ["lm.onnx"]),
        # teacher_race keys through --set
        *[Case(f"race: --set {s}", race(s), [s.split("=")[0]]) for s in (
            "search.inherit_min=2", "search.inherit_min=0", "search.max_cost=-1", "search.max_cost=nan",
            "search.race_fraction=0", "search.race_budget=1.5", "search.teacher_fraction=2")],
        Case("race: inherit_min under darts", ["search", "s.yaml", "--out", "race", "--set", "search.inherit_min=0.5"],
             ["search.inherit_min"]),
        # lm task data and vocabulary
        Case("lm: task.path missing", lm("task.path=nope.txt"), ["nope.txt", "task.path"]),
        Case("lm: task.path missing (in the spec)", ["train", "lm-nope.yaml", "--out", "lmnew", "--no-progress"],
             ["lm-nope.yaml:3:", "task.path", "nope.txt"], ["lm-nope.yaml"]),
        Case("lm: task.val_path missing", lm("task.val_path=nope.txt"), ["nope.txt", "task.val_path"]),
        Case("lm: task.path empty", lm("task.path=empty.txt"), ["empty.txt", "task.path"], ["empty.txt"]),
        Case("lm: task.path a folder", lm("task.path=mine"), ["mine", "task.path"], ["mine"]),
        Case("lm: text too short to cut", lm("task.max_bytes=5"), ["text.txt", "task.path"], ["text.txt"]),
        Case("lm: binary text (bytes are bytes)", lm("task.path=noise.txt", out="lm-noise"), [], ["noise.txt"],
             expect=0),
        Case("lm: latin-1 text", lm("task.path=latin1.txt", out="lm-latin1"), [], ["latin1.txt"], expect=0),
        *[Case(f"lm: vocab_path {f}", lm(f"task.vocab_path={f}"), [f], [f] if f != "nope.json" else [])
          for f in ("nope.json", "dup.json", "single.json", "torn.json", "none.json")],
        Case("lm: vocab_path binary (pieces are bytes)", lm("task.vocab_path=vocab.bin", out="lm-vocab-bin"), [],
             ["vocab.bin"], expect=0),
        Case("lm: vocab_size disagrees", lm("task.vocab_size=3"), ["task.vocab_size"]),
        Case("lm: val + test fractions >= 1", lm("task.val_fraction=0.6", "task.test_fraction=0.5"),
             ["task.val_fraction"]),
        Case("mqar: n_pairs > n_keys", ["train", "mq.yaml", "--out", "mqnew", "--set", "task.n_pairs=20"],
             ["task.n_pairs"]),
        Case("mqar: max_len too short", ["train", "mq.yaml", "--out", "mqnew", "--set", "task.max_len=6"],
             ["task.max_len"]),
        # attention options and decode bench
        Case("n_kv_heads per head", ["compile", "lm.yaml", "--set", "model.attention={granularity: head, "
                                     "candidates: [softmax: {n_kv_heads: 2}, linear]}"], ["n_kv_heads"]),
        Case("short_conv 99", ["compile", "lm.yaml", "--set", "model.attention={softmax: {short_conv: 99}}"],
             ["short_conv"]),
        Case("bench --decode --contexts 1e11", ["bench", "lmrun", "--decode", "--out", "bd", "--contexts",
                                                "99999999999", "--seq", "8"], ["--contexts"], ["lmrun"]),
        Case("bench --decode a classifier", ["bench", "run", "--decode", "--out", "bd2"], ["causal"], ["run"]),
    ]
