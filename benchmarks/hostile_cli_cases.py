"""Hostile commands of the CLI at large (used by hostile_commands.py): the wrong kind of path as a
model or input, outputs that are a pipe or a folder that takes no file, bench calls past the limits."""
from __future__ import annotations

import os
from pathlib import Path


def cli_cases(w: Path, Case) -> list:
    """Cases over the fixtures of hostile_commands.build_cases (run, m.onnx, t.yaml, mine, lmrun)."""
    os.mkfifo(w / "pipe.onnx")
    os.mkfifo(w / "pipe.yaml")
    cases = [
        Case("predict a train run folder as the model", ["predict", "run", "a b"], ["run", "nasgraph export"], ["run"]),
        Case("predict a spec as the model", ["predict", "t.yaml", "a b"], ["t.yaml", "nasgraph train"], ["t.yaml"]),
        Case("predict a missing model", ["predict", "nope.onnx", "a b"], ["nope.onnx", "no such"]),
        Case("predict a folder as the input", ["predict", "m.onnx", "mine"], ["mine", "folder"], ["mine", "m.onnx"]),
        Case("generate a missing model", ["generate", "nope"], ["nope", "no such"]),
        Case("export -o a named pipe --force", ["export", "run", "-o", "pipe.onnx", "--force"], ["pipe.onnx", "pipe"],
             ["run"]),
        Case("derive -o a named pipe --force", ["derive", "srun", "-o", "pipe.yaml", "--force"], ["pipe.yaml", "pipe"],
             ["srun"]),
        Case("bench --batch 1e11", ["bench", "m.onnx", "--out", "b-big", "--batch", "100000000000"], ["--batch"],
             ["m.onnx"]),
        Case("bench --repeats 1e11 (warmup 0: the time budget holds)",
             ["bench", "m.onnx", "--out", "b-rep", "--repeats", "100000000000", "--no-progress"], [], ["m.onnx"],
             expect=0),
    ]
    if Path("/proc/self").is_dir():   # a folder that takes no file (a read-only one, for a user who is not root)
        cases += [Case("export -o /proc/x.onnx", ["export", "run", "-o", "/proc/x.onnx"], ["cannot write"], ["run"]),
                  Case("data -o /proc/x.tsv", ["data", "listops", "--n", "3", "-o", "/proc/x.tsv"], ["cannot write"])]
    return cases
