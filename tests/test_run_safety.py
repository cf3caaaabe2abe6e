"""Run safety: checkpoints that cannot run code, run-folder ownership, resume checks, kill -9."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cli_checks import crafted_checkpoint, refused
from nasgraph.runfolder import MARKER
from nasgraph.training.checkpoint import read_state
from run_fixtures import cli, copy_run, train_spec, trained  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parent.parent


# -- checkpoints never run code --------------------------------------------------------------------
@pytest.mark.parametrize("raw_pickle", [False, True], ids=["torch-zip", "bare-pickle"])
def test_crafted_checkpoint_for_export_is_refused_and_runs_nothing(trained, tmp_path, capsys, raw_pickle):
    spec, _ = trained
    flag = tmp_path / "payload-ran"
    evil = crafted_checkpoint(tmp_path / "evil.pt", flag, raw_pickle=raw_pickle)
    line = refused(capsys, ["export", spec, "--checkpoint", evil, "-o", tmp_path / "m.onnx"], "evil.pt",
                   "nothing in it was run", keep=(evil, spec))
    assert raw_pickle or "refused: it holds exec" in line
    assert not flag.exists() and not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("command", ["eval", "export", "export-best", "resume"])
def test_crafted_checkpoint_in_a_run_folder_runs_nothing(trained, tmp_path, capsys, command):
    spec, run = trained
    run = copy_run(run, tmp_path / "run")
    flag = tmp_path / "payload-ran"
    target = "best.pt" if command == "export-best" else "last.pt"   # export takes best.pt unless --weights last
    crafted_checkpoint(run / "checkpoints" / target, flag)
    argv = {"eval": ["eval", run], "export": ["export", run, "-o", tmp_path / "m.onnx", "--weights", "last"],
            "export-best": ["export", run, "-o", tmp_path / "m.onnx"],
            "resume": ["train", run / "spec.yaml", "--out", run, "--resume", "--no-progress"]}[command]
    refused(capsys, argv, target, "refused", keep=(run,))
    assert not flag.exists()


# -- run-folder ownership -------------------------------------------------------------------------------
def test_every_run_folder_carries_its_kind(trained, tmp_path):
    _, run = trained
    assert json.loads((run / MARKER).read_text())["kind"] == "train"
    assert cli(["compile", str(trained[0]), "--out", str(tmp_path / "c")]) == 0
    assert json.loads((tmp_path / "c" / MARKER).read_text())["kind"] == "compile"


def test_train_refuses_a_search_run_and_search_a_train_run(trained, tiny_spec, tmp_path, capsys):
    spec, run = trained
    search = tmp_path / "search"
    assert cli(["search", str(tiny_spec()), "--out", str(search), "--no-progress"]) == 0
    refused(capsys, ["train", spec, "--out", search, "--no-progress"], str(search), "search run", keep=(search,))
    refused(capsys, ["train", spec, "--out", search, "--no-progress", "--resume"], "search run", keep=(search,))
    refused(capsys, ["search", tiny_spec(), "--out", run, "--no-progress"], str(run), "train run", keep=(run,))
    refused(capsys, ["bench", spec, "--out", run, "--force"], "train run", keep=(run,))
    refused(capsys, ["compile", spec, "--out", search, "--force"], "search run", keep=(search,))


def test_a_users_folder_is_never_written(train_spec, tmp_path, capsys, monkeypatch):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "spec.yaml").write_text("# my notes\n" + train_spec.read_text())
    (own / "graph.json").write_text("{}")
    monkeypatch.chdir(own)
    refused(capsys, ["train", "spec.yaml", "--out", ".", "--no-progress"], "not a nasgraph run folder", keep=(own,))
    refused(capsys, ["compile", "spec.yaml", "--out", "."], "not empty", keep=(own,))
    refused(capsys, ["bench", "spec.yaml", "--out", "."], "not empty", keep=(own,))
    refused(capsys, ["train", "spec.yaml", "--out", "spec.yaml", "--no-progress"], "spec.yaml", "is a file",
            keep=(own,))
    refused(capsys, ["bench", "spec.yaml", "--out", "graph.json"], "graph.json", "is a file", keep=(own,))


def test_compile_out_replaces_its_own_artifacts_only_with_force(train_spec, tmp_path, capsys):
    out = tmp_path / "c"
    assert cli(["compile", str(train_spec), "--out", str(out)]) == 0
    refused(capsys, ["compile", train_spec, "--out", out], "already holds a compile run", "--force", keep=(out,))
    assert cli(["compile", str(train_spec), "--out", str(out), "--force"]) == 0


def test_an_empty_folder_and_a_failed_first_try_are_usable(train_spec, tmp_path, capsys, monkeypatch):
    import nasgraph.training.run as run_module
    from nasgraph.errors import NasgraphError

    out = tmp_path / "empty"
    out.mkdir()
    real = run_module.tasks.load_task

    def unreadable(config):
        raise NasgraphError("data.tsv: no such file")

    monkeypatch.setattr(run_module.tasks, "load_task", unreadable)   # fails after the folder was claimed
    refused(capsys, ["train", train_spec, "--out", out, "--no-progress"], "data.tsv")
    assert (out / MARKER).exists()
    monkeypatch.setattr(run_module.tasks, "load_task", real)
    assert cli(["train", str(train_spec), "--out", str(out), "--no-progress"]) == 0


# -- resume checks the spec --------------------------------------------------------------------------
def test_resume_with_another_spec_is_refused_naming_the_keys(trained, tmp_path, capsys):
    spec, run = trained
    run = copy_run(run, tmp_path / "run")
    line = refused(capsys, ["train", spec, "--out", run, "--resume", "--no-progress", "--set", "train.lr=0.1",
                            "--set", "model.d_model=32"], "train.lr", "model.d_model", keep=(run,))
    assert "0.003 -> 0.1" in line
    other = tmp_path / "other.yaml"
    other.write_text(spec.read_text().replace("tiny-train", "other"))
    refused(capsys, ["train", other, "--out", run, "--resume", "--no-progress"], "name", keep=(run,))


def test_more_steps_on_a_finished_run_needs_extend(trained, tmp_path, capsys):
    spec, run = trained
    run = copy_run(run, tmp_path / "run")
    line = refused(capsys, ["train", spec, "--out", run, "--resume", "--no-progress", "--set", "train.steps=12"],
                   "train.steps: 8 -> 12", keep=(run,))
    assert "--extend" in line
    refused(capsys, ["train", spec, "--out", run, "--resume", "--extend", "--no-progress", "--set", "train.steps=4"],
            "--extend", keep=(run,))
    assert cli(["train", str(spec), "--out", str(run), "--resume", "--extend", "--no-progress",
                 "--set", "train.steps=12"]) == 0
    assert json.loads((run / "result.json").read_text())["steps"] == 12
    assert read_state(run / "checkpoints" / "last.pt")["step"] == 12
    assert "steps: 12" in (run / "spec.yaml").read_text()


def test_search_resume_with_another_spec_keeps_the_snapshot(tiny_spec, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["search", str(tiny_spec()), "--out", str(run), "--no-progress"]) == 0
    other = tiny_spec("head", "gdas", name="other.yaml")
    refused(capsys, ["search", other, "--out", run, "--resume", "--no-progress"], "model.attention.granularity",
            "search.strategy", keep=(run,))


# -- kill -9 ---------------------------------------------------------------------------------------------
def test_torn_log_line_is_tolerated_on_resume(train_spec, tmp_path, capsys):
    run = tmp_path / "run"
    assert cli(["train", str(train_spec), "--out", str(run), "--no-progress", "--set", "train.steps=6"]) == 0
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "split": "tr')                        # a kill mid-write
    assert cli(["train", str(train_spec), "--out", str(run), "--no-progress", "--resume",
                 "--set", "train.steps=6"]) == 0
    rows = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in rows) == 6


KILL_IN_SAVE = """
import os, signal, sys, torch
real = torch.save
def torn(obj, f, *a, **k):
    if getattr(f, "name", "").endswith(".last.pt.tmp") and obj.get("step") == 6:
        f.write(b"PK\\x03\\x04 half a checkpoint")
        f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    return real(obj, f, *a, **k)
torch.save = torn
from nasgraph.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_leaves_a_resumable_run(train_spec, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = ["train", str(train_spec), "--out", str(tmp_path / "cut"), "--no-progress"]
    proc = subprocess.run([sys.executable, "-c", KILL_IN_SAVE, *argv], env=env, capture_output=True, timeout=600)
    assert proc.returncode == -9
    ckpts = tmp_path / "cut" / "checkpoints"
    assert (ckpts / ".last.pt.tmp").exists() and read_state(ckpts / "last.pt")["step"] == 3
    assert cli([*argv, "--resume"]) == 0
    assert not list((tmp_path / "cut").rglob(".*.tmp"))
    assert cli(["train", str(train_spec), "--out", str(tmp_path / "full"), "--no-progress"]) == 0
    a, b = (read_state(p / "checkpoints" / "last.pt") for p in (tmp_path / "full", tmp_path / "cut"))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])


@pytest.mark.slow
def test_random_kills_then_resume_match_the_uninterrupted_run(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from kill_resume import kill_loop

    result = kill_loop(tmp_path, "train", kills=2, seed=1, steps=60, d_model=16, window_s=1.0)
    assert result["landed"] >= 1
    assert result["differences"] == [] and result["temp_files_left"] == []


def test_no_checkpoint_load_in_the_code_allows_pickled_objects():
    offenders = []
    for path in [*ROOT.joinpath("nasgraph").rglob("*.py"), *ROOT.joinpath("exporters").rglob("*.py")]:
        text = path.read_text()
        if "weights_only=False" in text or ("torch.load(" in text and "weights_only=True" not in text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_resume_after_a_kill_before_the_first_checkpoint_starts_clean_logs(train_spec, tmp_path, monkeypatch):
    import nasgraph.training.loop as loop

    def die(self, state):
        raise KeyboardInterrupt

    assert cli(["train", train_spec, "--out", tmp_path / "full", "--no-progress"]) == 0
    monkeypatch.setattr(loop.RunDir, "save_checkpoint", die)           # killed before any checkpoint landed
    assert cli(["train", train_spec, "--out", tmp_path / "cut", "--no-progress"]) == 130
    monkeypatch.undo()
    assert (tmp_path / "cut" / "metrics.jsonl").read_text()
    assert cli(["train", train_spec, "--out", tmp_path / "cut", "--no-progress", "--resume"]) == 0
    rows = lambda p: [{k: v for k, v in json.loads(l).items() if k != "seconds"}  # noqa: E731
                      for l in (p / "metrics.jsonl").read_text().splitlines()]
    assert rows(tmp_path / "cut") == rows(tmp_path / "full")


def _checkpointed_strategies() -> list[str]:
    """Strategies that train a supernet through the loop (and so put their state into checkpoints)."""
    from nasgraph.search.strategies import STRATEGIES, get

    return [n for n in STRATEGIES.names() if hasattr(get(n), "attach") and hasattr(get(n), "state_dict")]


@pytest.mark.parametrize("name", _checkpointed_strategies())
def test_every_strategy_state_loads_without_pickled_objects(name, tiny_spec, tmp_path):
    """A strategy's state goes into checkpoints read with weights_only=True: tensors and plain data only."""
    from nasgraph.graph import compile_spec
    from nasgraph.graph.summary import summarize
    from nasgraph.model import GraphModule
    from nasgraph.search.objective import CostTable
    from nasgraph.search.strategies import get
    from nasgraph.spec import load_spec
    from nasgraph.training.checkpoint import read_file

    doc = load_spec(tiny_spec("head", name))
    graph = compile_spec(doc)
    strategy = get(name)(doc.spec.search, 6, CostTable.from_summary(summarize(graph)))
    model = GraphModule(graph)
    strategy.attach(model)
    torch.save({"strategy": strategy.state_dict()}, tmp_path / "s.pt")
    strategy.load_state_dict(read_file(tmp_path / "s.pt")["strategy"])
