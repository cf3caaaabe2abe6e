"""`nasgraph demo spec.yaml`: the whole chain on one spec, leaving every artifact in one folder.

compile -> search -> derive -> train -> export -> predict -> bench. Each step is the same command a
user would run; `--set` overrides apply to the spec (and so to the derived spec too).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from nasgraph.commands._common import add_spec_overrides
from nasgraph.errors import NasgraphError

NAME = "demo"
HELP = "run compile, search, derive, train, export, predict and bench on one spec"
ORDER = 0


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec YAML file with choice points")
    add_spec_overrides(p)
    p.add_argument("--out", type=Path, help="folder for everything (default runs/demo-<time>); must not exist")
    p.add_argument("--predict", default=None, help="text to classify with the exported model "
                                                   "(default: the first test example of the task)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def _example_text(spec_path: Path, overrides: list[str]) -> str:
    """The first test example of the task, as raw text the tokenizer accepts."""
    from nasgraph import tasks
    from nasgraph.spec import load_spec
    from nasgraph.spec.checks import load_task_data
    from nasgraph.tasks.tokenize import Tokenizer

    doc = load_spec(spec_path, overrides)
    data = load_task_data(tasks.parse_task(doc.spec.task), doc.error)
    return Tokenizer.from_dict(data.tokenizer).decode(data.splits["test"].ids[0])


def run(args) -> int:
    from nasgraph.cli import main
    from nasgraph.runfolder import claim

    out = args.out or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NasgraphError(f"{out} already exists; the demo writes a fresh folder (nothing was overwritten)")
    sets = [a for o in args.overrides for a in ("--set", o)]
    quiet = [] if args.progress else ["--no-progress"]
    text = args.predict or _example_text(Path(args.spec), args.overrides)
    claim(out, "demo")
    steps = [
        ("compile", ["compile", args.spec, *sets, "--out", str(out / "compile")]),
        ("search", ["search", args.spec, *sets, "--out", str(out / "search"), *quiet]),
        ("derive", ["derive", str(out / "search"), "-o", str(out / "derived.yaml")]),
        ("train", ["train", str(out / "derived.yaml"), "--out", str(out / "train"), *quiet]),
        ("export", ["export", str(out / "train"), "-o", str(out / "model.onnx")]),
        ("predict", ["predict", str(out / "model.onnx"), "--text", text]),
        ("bench", ["bench", str(out / "model.onnx"), "--out", str(out / "bench"), "--runs", str(out / "train")]),
    ]
    for i, (name, argv) in enumerate(steps, 1):
        print(f"\n== [{i}/{len(steps)}] nasgraph {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        code = main(argv)
        if code:
            print(f"demo: step '{name}' failed (exit {code}); artifacts so far are in {out}")
            return code
        print(f"   ({name}: {time.perf_counter() - t0:.0f} s)")
    rec = json.loads((out / "search" / "recommendation.json").read_text())
    print(f"\nsearch: {rec['headline']}"
          + ("" if rec["confident"] else "; the demo trained and exported what the search leaned to"))
    print(f"demo done: reports in {out}/search/report.md, {out}/train/report.md, {out}/bench/report.md")
    return 0
