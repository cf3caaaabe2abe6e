"""Hostile commands of the CLI at large (used by hostile_commands.py): the wrong kind of path as a
model or input, outputs that are a pipe or a folder that takes no file, bench calls past the limits, inputs
that never end, links that loop, names that are not UTF-8, a run written by a newer nasgraph."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

ODD = "run-\udcff"                                  # argv's form of a file name with the byte 0xff


def _odd_fixtures(w: Path) -> None:
    """A link loop, a copy of the run under a non-UTF-8 name, a run marked as written by nasgraph 99."""
    import torch

    os.mkfifo(w / "nobody.yaml")
    os.symlink("loop", w / "loop")
    shutil.copytree(w / "run", w / ODD)
    shutil.copytree(w / "run", w / "newer-run")
    marker = w / "newer-run" / ".nasgraph-run.json"
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "version": "99.0.0"}))
    last = w / "newer-run" / "checkpoints" / "last.pt"
    torch.save({**torch.load(last, weights_only=True), "version": 2}, last)


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
    _odd_fixtures(w)
    cases += [
        Case("odd: compile a named pipe nobody writes to", ["compile", "nobody.yaml"], ["nobody.yaml", "named pipe"]),
        Case("odd: compile /dev/zero (never ends)", ["compile", "/dev/zero"], ["/dev/zero", "at most"]),
        Case("odd: train --out a link loop", ["train", "t.yaml", "--out", "loop"], ["loop", "symbolic link"]),
        Case("odd: train --out a name that is not UTF-8", ["train", "t.yaml", "--out", "r\udcff"], ["not UTF-8"]),
        Case("odd: export a run folder named with a byte that is not UTF-8", ["export", ODD, "-o", "odd.onnx"], [], [ODD],
             expect=0),
        Case("odd: derive -o /dev/stdout --force", ["derive", "srun", "-o", "/dev/stdout", "--force"], ["/dev/stdout"],
             ["srun"]),
        Case("odd: train --resume a run written by a newer nasgraph",
             ["train", "newer-run/spec.yaml", "--out", "newer-run", "--resume", "--no-progress"],
             ["last.pt", "version 2"], ["newer-run"]),
    ]
    if os.path.isdir("/sys/kernel"):                 # read-only for root too
        cases.append(Case("odd: train --out under /sys", ["train", "t.yaml", "--out", "/sys/kernel/x"], ["/sys/kernel/x"]))
    if Path("/proc/self").is_dir():   # a folder that takes no file (a read-only one, for a user who is not root)
        cases += [Case("export -o /proc/x.onnx", ["export", "run", "-o", "/proc/x.onnx"], ["cannot write"], ["run"]),
                  Case("data -o /proc/x.tsv", ["data", "listops", "--n", "3", "-o", "/proc/x.tsv"], ["cannot write"])]
    return cases
