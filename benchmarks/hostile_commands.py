"""Hostile and careless commands past the spec: damaged files, foreign run folders, crafted checkpoints.

    .venv/bin/python benchmarks/hostile_commands.py [--timeout 120] [--only SUBSTRING]

Builds one trained run, its export and one search run (and a tiny LM run and its export: the cases of
hostile_lm_cases.py; hostile_cli_cases.py adds paths of the wrong kind and bench limits), then runs every case as its own
`python -m nasgraph ...` process (per-case time limit). A case is clean when it exits with the
expected code (2 for refusals) with one printable stderr line naming the file or option, no traceback, every
file it was given unchanged (sha256 before/after) and no payload run. Writes
benchmarks/out/hostile_commands.{md,json}.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from hostile_cli_cases import cli_cases  # noqa: E402
from hostile_lm_cases import lm_cases  # noqa: E402
OUT = Path(__file__).parent / "out"
TRAIN = """
name: tiny-train
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model: {d_model: 16, n_heads: 2, n_layers: 1, ffn: {mult: 2}, attention: softmax}
train: {steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}
bench: {batch_sizes: [1], seq_lens: [8], repeats: 2, warmup: 0}
"""
SEARCH = TRAIN.replace("attention: softmax", "attention: {candidates: [softmax, linear]}").replace(
    "name: tiny-train", "name: tiny-search\nsearch: {strategy: darts, seeds: [0], steps: 3}")


@dataclass
class Case:
    name: str
    argv: list[str]
    names: list[str]                               # what the error line must mention
    keep: list[str] = field(default_factory=list)  # paths that must not change
    expect: int = 2
    stdin: bytes | None = None


def payload_pickle(flag: Path, torch_zip: bool, path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return (exec, (f"open({str(flag)!r}, 'w').write('ran')",))

    state = {"model": {}, "evil": Payload()}
    if torch_zip:
        import torch

        torch.save(state, path)
    else:
        path.write_bytes(pickle.dumps(state))


def _nasgraph(argv: list[str], cwd: Path, timeout: float, stdin: bytes | None = None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.run([sys.executable, "-m", "nasgraph", *argv], cwd=cwd, env=env, capture_output=True,
                          timeout=timeout, input=stdin)


def with_metadata(src: Path, dst: Path, **changes: str) -> Path:
    import onnx

    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props} | {f"nasgraph.{k}": v for k, v in changes.items()}
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))
    return dst


def _foreign_checkpoints(w: Path) -> None:
    """other-size.pt (the run's weights, one tensor a size larger), other-model.pt, foreign.zip.pt."""
    import zipfile

    import torch

    state = torch.load(w / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    name = sorted(state)[0]
    torch.save({"model": {**state, name: torch.zeros(*[d + 1 for d in state[name].shape])}}, w / "other-size.pt")
    torch.save({"model": {"w": torch.zeros(2)}}, w / "other-model.pt")
    with zipfile.ZipFile(w / "foreign.zip.pt", "w") as z:
        z.writestr("notes.txt", "hello")


def build_cases(w: Path) -> list[Case]:
    """Fixtures in `w` and the cases over them (paths relative to `w`)."""
    (w / "t.yaml").write_text(textwrap.dedent(TRAIN))
    (w / "s.yaml").write_text(textwrap.dedent(SEARCH))
    for argv in (["train", "t.yaml", "--out", "run", "--no-progress"], ["export", "run", "-o", "m.onnx"],
                 ["search", "s.yaml", "--out", "srun", "--no-progress"], ["compile", "t.yaml", "--out", "comp"]):
        proc = _nasgraph(argv, w, 600)
        assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    good = (w / "m.onnx").read_bytes()
    last = (w / "run" / "checkpoints" / "last.pt").read_bytes()
    files = {"notes.txt": b"my notes\n", "empty.pt": b"", "text.pt": b"not a checkpoint\n", "trunc.pt": last[:600],
             "junk.pt": os.urandom(4096), "text.onnx": b"hello\n", "trunc.onnx": good[: len(good) // 2],
             "empty.onnx": b"", "bin.txt": b"1 2\x00\x03", "latin.txt": "caf\u00e9\n".encode("latin-1"),
             "bin.tsv": b"\x89PNG\r\n\x1a\n\x00\x00", "bin.csv": bytes(range(256)) * 8}
    mid = len(last) // 2
    files["flipped.pt"] = last[:mid] + bytes(b ^ 0xFF for b in last[mid:mid + 64]) + last[mid + 64:]
    files["cut-end.pt"] = last[:-10]
    for name, data in files.items():
        (w / name).write_bytes(data)
    _foreign_checkpoints(w)
    payload_pickle(w / "flag-zip", True, w / "evil.pt")
    payload_pickle(w / "flag-raw", False, w / "evil.pkl")
    for key, value in (("class_names", "nope"), ("max_len", "abc"), ("tokenizer", "{}"), ("class_names", '["a"]')):
        with_metadata(w / "m.onnx", w / f"meta-{key}-{len(value)}.onnx", **{key: value})
    with_metadata(w / "m.onnx", w / "src-evil.onnx", source=str(w / "evil.pt"))
    mine = w / "mine"
    mine.mkdir()
    shutil.copy(w / "t.yaml", mine / "spec.yaml")
    (mine / "graph.json").write_text("{}")
    for name, damage in (("torn-search", lambda t: t[: len(t) // 2]), ("bad-choice", lambda t: json.dumps(
            {**json.loads(t), "choice": {"L0.attention": [9]}}))):
        shutil.copytree(w / "srun", w / name)
        (w / name / "search.json").write_text(damage((w / name / "search.json").read_text()))
    for name in ("evil-run", "torn-run", "tasks-run", "log-run", "marker-run"):
        shutil.copytree(w / "run", w / name)
    shutil.copy(w / "evil.pt", w / "evil-run" / "checkpoints" / "last.pt")
    (w / "torn-run" / "checkpoints" / "last.pt").write_bytes(last[:300])
    (w / "torn-run" / "checkpoints" / "prev.pt").unlink(missing_ok=True)
    (w / "tasks-run" / "task.json").write_text('{"vocab": [')
    (w / "log-run" / "metrics.jsonl").write_text("{bad\n" + (w / "run" / "metrics.jsonl").read_text())
    (w / "marker-run" / ".nasgraph-run.json").write_text("{")
    (w / "tiny.yaml").write_text(textwrap.dedent(TRAIN).replace("seq_lens: [8]", "seq_lens: []"))

    def resume(run: str, *extra: str) -> list[str]:
        return ["train", f"{run}/spec.yaml", "--out", run, "--resume", "--no-progress", *extra]

    tr = lambda *extra: ["train", "t.yaml", "--out", "new", "--no-progress", *extra]  # noqa: E731
    return [
        # checkpoints: payloads and damage
        Case("export --checkpoint crafted (torch zip)", ["export", "t.yaml", "--checkpoint", "evil.pt", "-o", "x.onnx"],
             ["evil.pt"], ["evil.pt"]),
        Case("export --checkpoint crafted (bare pickle)", ["export", "t.yaml", "--checkpoint", "evil.pkl", "-o",
                                                           "x.onnx"], ["evil.pkl"], ["evil.pkl"]),
        Case("eval run with crafted last.pt", ["eval", "evil-run"], ["last.pt"], ["evil-run"]),
        Case("export --weights last of a run with crafted last.pt", ["export", "evil-run", "-o", "x.onnx", "--weights",
                                                                     "last"], ["last.pt"], ["evil-run"]),
        Case("export (best.pt) of a run with crafted last.pt", ["export", "evil-run", "-o", "x-best.onnx"], [],
             ["evil-run"], expect=0),
        Case("train --resume with crafted last.pt", resume("evil-run"), ["last.pt"], ["evil-run"]),
        Case("bench run with crafted last.pt", ["bench", "evil-run", "--out", "b"], ["last.pt"], ["evil-run"]),
        Case("bench onnx whose source is crafted", ["bench", "src-evil.onnx", "--out", "b-src", "--no-progress"], [],
             ["evil.pt"], expect=0),
        *[Case(f"export --checkpoint {f}", ["export", "t.yaml", "--checkpoint", f, "-o", "x.onnx"], [f], [f])
          for f in ("empty.pt", "text.pt", "trunc.pt", "junk.pt", "run")],
        *[Case(f"export --checkpoint {f}", ["export", "t.yaml", "--checkpoint", f, "-o", "x.onnx"], [f, what], [f])
          for f, what in (("flipped.pt", "CRC"), ("cut-end.pt", "truncated"), ("other-size.pt", "another size"),
                          ("other-model.pt", "another model"), ("foreign.zip.pt", "not a torch checkpoint"))],
        Case("eval run with torn last.pt, no prev", ["eval", "torn-run"], ["last.pt"], ["torn-run"]),
        Case("train --resume with torn last.pt, no prev", resume("torn-run"), ["last.pt"], ["torn-run"]),
        # run folders
        Case("train --out a search run", ["train", "t.yaml", "--out", "srun", "--no-progress"], ["srun"], ["srun"]),
        Case("train --out a search run --resume", ["train", "t.yaml", "--out", "srun", "--resume"], ["srun"], ["srun"]),
        Case("search --out a train run", ["search", "s.yaml", "--out", "run", "--no-progress"], ["run"], ["run"]),
        Case("bench --out a train run --force", ["bench", "m.onnx", "--out", "run", "--force"], ["run"], ["run"]),
        Case("compile --out a search run --force", ["compile", "t.yaml", "--out", "srun", "--force"], ["srun"],
             ["srun"]),
        Case("compile --out a used compile folder", ["compile", "t.yaml", "--out", "comp"], ["comp"], ["comp"]),
        Case("train --out a user's folder", ["train", "mine/spec.yaml", "--out", "mine"], ["mine"], ["mine"]),
        Case("compile --out a user's folder", ["compile", "mine/spec.yaml", "--out", "mine"], ["mine"], ["mine"]),
        Case("train --out an existing file", ["train", "t.yaml", "--out", "notes.txt"], ["notes.txt"], ["notes.txt"]),
        Case("bench --out an existing file", ["bench", "m.onnx", "--out", "notes.txt"], ["notes.txt"], ["notes.txt"]),
        Case("compile --out an existing file", ["compile", "t.yaml", "--out", "notes.txt"], ["notes.txt"],
             ["notes.txt"]),
        Case("export -o a folder --force", ["export", "run", "-o", "mine", "--force"], ["mine"], ["mine", "run"]),
        Case("derive -o a folder", ["derive", "srun", "-o", "mine"], ["mine"], ["mine"]),
        Case("train --out under a file", ["train", "t.yaml", "--out", "notes.txt/sub"], ["notes.txt/sub"],
             ["notes.txt"]),
        Case("demo --out a used folder", ["demo", "s.yaml", "--out", "run"], ["run"], ["run"]),
        Case("damaged run marker", resume("marker-run"), [".nasgraph-run.json"], ["marker-run"]),
        # resume
        Case("resume with a changed value", resume("run", "--set", "train.lr=0.1"), ["train.lr"], ["run"]),
        Case("resume a finished run with more steps", resume("run", "--set", "train.steps=6"), ["train.steps"],
             ["run"]),
        Case("search --resume with another spec", ["search", "t.yaml", "--out", "srun", "--resume"], ["t.yaml"],
             ["srun"]),
        Case("search --resume with changed seeds", ["search", "s.yaml", "--out", "srun", "--resume", "--set",
                                                    "search.seeds=[0,1]"], ["search.seeds"], ["srun"]),
        Case("resume with a damaged log line", resume("log-run"), ["metrics.jsonl:1"], ["log-run"]),
        # predict
        *[Case(f"predict on {f}", ["predict", f, "a b"], [f], [f]) for f in ("text.onnx", "trunc.onnx", "empty.onnx",
                                                                           "junk.pt", "mine")],
        *[Case(f"predict with bad metadata {p.name}", ["predict", p.name, "a b"], [p.name], [p.name])
          for p in sorted(w.glob("meta-*.onnx"))],
        *[Case(f"predict input {f}", ["predict", "m.onnx", f], [f], [f]) for f in ("bin.txt", "latin.txt", "bin.tsv")],
        Case("predict a missing input file", ["predict", "m.onnx", "inputs.txt"], ["inputs.txt"]),
        Case("predict binary stdin", ["predict", "m.onnx", "-"], ["stdin"], stdin=b"\x00\x01\x02"),
        # bench
        Case("bench --seq abc", ["bench", "m.onnx", "--out", "b1", "--seq", "abc"], ["--seq"]),
        Case("bench --batch 0", ["bench", "m.onnx", "--out", "b1", "--batch", "0"], ["--batch"]),
        Case("bench --repeats 0", ["bench", "m.onnx", "--out", "b1", "--repeats", "0"], ["repeats"]),
        Case("bench --graph-opt foo", ["bench", "m.onnx", "--out", "b1", "--graph-opt", "foo"], ["foo"]),
        Case("bench a spec with seq_lens []", ["bench", "tiny.yaml", "--out", "b1"], ["bench.seq_lens"], ["tiny.yaml"]),
        Case("bench --runs a non-run", ["bench", "m.onnx", "--out", "b1", "--runs", "mine"], ["mine"], ["mine"]),
        Case("bench a truncated onnx", ["bench", "trunc.onnx", "--out", "b1"], ["trunc.onnx"], ["trunc.onnx"]),
        # derive / export on damaged run files
        Case("derive a torn search.json", ["derive", "torn-search", "-o", "d.yaml"], ["search.json"], ["torn-search"]),
        Case("derive a bad choice", ["derive", "bad-choice", "-o", "d.yaml"], ["search.json"], ["bad-choice"]),
        Case("derive a train run", ["derive", "run", "-o", "d.yaml"], ["run"], ["run"]),
        Case("export with a damaged task.json", ["export", "tasks-run", "-o", "x.onnx"], ["task.json"], ["tasks-run"]),
        # values compile accepts but later commands crashed on
        Case("train.seed -1", tr("--set", "train.seed=-1"), ["train.seed"]),
        Case("search.seeds []", ["search", "s.yaml", "--out", "new", "--set", "search.seeds=[]"], ["search.seeds"]),
        Case("dropout 5", tr("--set", "model.dropout=5"), ["model.dropout"]),
        Case("n_train 1e9", tr("--set", "task.n_train=1000000000"), ["n_train"]),
        Case("bench.seq_lens []", tr("--set", "bench.seq_lens=[]"), ["bench.seq_lens"]),
        Case("head with fewer classes", tr("--set", "model={d_model: 16, n_heads: 2, nodes: {e: {op: embedding}, "
                                                    "p: {op: pool, inputs: [e]}, h: {op: head, inputs: [p], "
                                                    "num_classes: 1}}}"), ["classes"]),
        Case("train.threads 100000 (capped)", tr("--set", "train.threads=100000"), [], expect=0),
        Case("text task on a binary TSV", tr("--set", f"task={{kind: text, path: {w / 'bin.tsv'}, max_len: 32}}"),
             ["bin.tsv"], ["bin.tsv"]),
        Case("text task on a binary CSV", tr("--set", f"task={{kind: text, path: {w / 'bin.csv'}, max_len: 32}}"),
             ["bin.csv"], ["bin.csv"]),
    ] + cli_cases(w, Case) + lm_cases(w, Case, _nasgraph)


def tree_hash(paths: list[Path]) -> dict[str, str]:
    out = {}
    for root in paths:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        out.update({str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files})
    return out


def run_case(case: Case, w: Path, timeout: float) -> dict:
    keep = [w / k for k in case.keep]
    before = tree_hash(keep)
    t0 = time.perf_counter()
    try:
        proc = _nasgraph(case.argv, w, timeout, case.stdin)
    except subprocess.TimeoutExpired:
        return {"case": case.name, "outcome": "hang", "seconds": timeout}
    err = proc.stderr.decode(errors="replace")
    lines = [l for l in err.splitlines() if l.strip() and "warning" not in l and "note:" not in l
             and not l.startswith(("bench:", "train", "search"))]
    outcome = "clean"
    if "Traceback" in err:
        outcome = "traceback"
    elif proc.returncode != case.expect:
        outcome = f"exit {proc.returncode}"
    elif case.expect == 2 and (len(lines) != 1 or not lines[0].isprintable()
                               or not all(n in lines[0] for n in case.names)):
        outcome = "unclear message"
    if tree_hash(keep) != before:
        outcome = "file changed"
    if any(w.glob("flag-*")):
        outcome = "payload ran"
        for f in w.glob("flag-*"):
            f.unlink()
    return {"case": case.name, "outcome": outcome, "exit": proc.returncode,
            "seconds": round(time.perf_counter() - t0, 1), "message": lines[0][:300] if lines else ""}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--only", default="", help="run the cases whose name contains this")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        w = Path(tmp)
        cases = [c for c in build_cases(w) if args.only in c.name]
        results = []
        for case in cases:
            results.append(run_case(case, w, args.timeout))
            print(json.dumps(results[-1]), flush=True)
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    OUT.mkdir(exist_ok=True)
    (OUT / "hostile_commands.json").write_text(json.dumps({"counts": counts, "cases": results}, indent=1))
    rows = ["| case | outcome | exit | message |", "|---|---|---|---|"]
    rows += [f"| {r['case']} | {r['outcome']} | {r.get('exit', '')} | {r.get('message', '').replace('|', '/')} |"
             for r in results]
    (OUT / "hostile_commands.md").write_text(f"{len(results)} cases: {counts}\n\n" + "\n".join(rows) + "\n")
    print(f"{len(results)} cases: {counts}")
    return 0 if set(counts) <= {"clean"} else 1


if __name__ == "__main__":
    sys.exit(main())
