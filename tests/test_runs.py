"""Machine-readable output: --json prints the run folder's JSON; `nasgraph runs` lists runs; `nasgraph
compare` puts runs of one task side by side and refuses runs of different tasks."""
from __future__ import annotations

import json

import pytest

from nasgraph.cli import main


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A search run, its derived spec trained, and a train run of another task, under one folder."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("runs")
    spec = root / "spec.yaml"
    spec.write_text(TINY % {"granularity": "layer", "strategy": "darts", "extra": ""})
    outputs = {}
    for name, argv in [("search", ["search", str(spec), "--out", str(root / "search")]),
                       ("derive", ["derive", str(root / "search"), "-o", str(root / "derived.yaml")]),
                       ("train", ["train", str(root / "derived.yaml"), "--out", str(root / "train")]),
                       ("other", ["train", str(root / "derived.yaml"), "--out", str(root / "other"),
                                  "--set", "task.n_symbols=5"]),
                       ("eval", ["eval", str(root / "train")])]:
        outputs[name] = argv
    return root, outputs


def run_json(argv, capsys) -> dict:
    assert main(argv + ["--json"] + (["--no-progress"] if argv[0] in ("search", "train") else [])) == 0
    return json.loads(capsys.readouterr().out)


def test_json_output_is_the_run_folders_json(runs, capsys):
    root, argv = runs
    assert run_json(argv["search"], capsys) == json.loads((root / "search" / "search.json").read_text())
    derived = run_json(argv["derive"], capsys)
    assert derived["path"] == str(root / "derived.yaml") and set(derived["choice"]) == {"L0.attention", "L1.attention"}
    assert run_json(argv["train"], capsys) == json.loads((root / "train" / "result.json").read_text())
    run_json(argv["other"], capsys)
    evaluated = run_json(argv["eval"], capsys)
    assert evaluated["split"] == "test" and 0 <= evaluated["acc"] <= 1 and evaluated["n"] == 64


def test_runs_lists_kind_task_status_and_metric(runs, capsys):
    root, _ = runs
    (root / "killed").mkdir()
    (root / "killed" / "spec.yaml").write_text((root / "train" / "spec.yaml").read_text())
    (root / "killed" / "metrics.jsonl").write_text('{"step": 3, "split": "train", "loss": 1.0}\n')
    (root / "broken").mkdir()
    (root / "broken" / "spec.yaml").write_text("name: x\ntask: {kind: tiny}\n")
    (root / "broken" / "result.json").write_text("{not json")
    (root / "marked").mkdir()
    (root / "marked" / ".nasgraph-run.json").write_text('{"kind": "bench"}')
    (root / "notes").mkdir()
    listed = {r["path"].rsplit("/", 1)[-1]: r for r in run_json(["runs", str(root)], capsys)["runs"]}
    assert set(listed) == {"search", "train", "other", "killed", "broken", "marked"}
    assert listed["search"]["kind"] == "search" and listed["search"]["metric"] == "supernet val acc"
    assert listed["train"]["status"] == "done" and listed["train"]["metric"] == "test acc"
    assert listed["train"]["value"] == json.loads((root / "train" / "result.json").read_text())["test"]["acc"]
    assert listed["train"]["task"]["kind"] == "tiny"
    assert listed["killed"]["status"] == "incomplete" and "step 3" in listed["killed"]["detail"]
    assert listed["broken"]["status"] == "damaged"
    assert listed["marked"]["kind"] == "bench" and listed["marked"]["status"] == "incomplete"
    assert main(["runs", str(root)]) == 0
    assert "supernet val acc" in capsys.readouterr().out


def test_compare_puts_runs_of_one_task_side_by_side(runs, tmp_path, capsys):
    root, _ = runs
    out = tmp_path / "cmp"
    result = run_json(["compare", str(root / "search"), str(root / "train"), "--out", str(out)], capsys)
    kinds = {p["name"]: p for p in result["points"]}
    assert set(kinds) == {"search", "train"} and result["cost"] == "flops"
    assert kinds["train"]["value"] == json.loads((root / "train" / "result.json").read_text())["test"]["acc"]
    assert any(p["pareto"] for p in result["points"]) and kinds["train"]["flops"] > 0
    assert (out / "pareto.png").stat().st_size > 0 and "| train | train |" in (out / "compare.md").read_text()


def test_compare_refuses_runs_of_different_tasks(runs, capsys):
    root, _ = runs
    assert main(["compare", str(root / "train"), str(root / "other")]) == 2
    err = capsys.readouterr().err
    assert "n_symbols: 6 vs 5" in err and "different tasks" in err
