"""Damaged and odd inputs past the spec: each is one line naming the file and what is wrong, exit 2,
no traceback, and every file the user had is left as it was."""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import onnx
import pytest
import torch

from cli_checks import crafted_checkpoint, refused
from nasgraph.cli import main

TASK = "task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}"
TRAIN = f"""
name: tiny-train
{TASK}
model: {{d_model: 16, n_heads: 2, n_layers: 1, ffn: {{mult: 2}}, attention: softmax}}
train: {{steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}}
bench: {{batch_sizes: [1], seq_lens: [8], repeats: 2, warmup: 0}}
"""
NODES = f"""
name: tiny-nodes
{TASK}
model:
  d_model: 16
  n_heads: 2
  nodes:
    emb: {{op: embedding}}
    att: {{op: attention, inputs: [emb], candidates: [softmax]}}
    pool: {{op: pool, inputs: [att], type: mean}}
    head: {{op: head, inputs: [pool], num_classes: 2}}
train: {{steps: 3, batch_size: 16, eval_every: 3, checkpoint_every: 3}}
"""


def cli(argv) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(spec, train run, model.onnx) shared by the module (read-only)."""
    root = tmp_path_factory.mktemp("exported")
    spec = root / "train.yaml"
    spec.write_text(textwrap.dedent(TRAIN))
    assert cli(["train", spec, "--out", root / "run", "--no-progress"]) == 0
    assert cli(["export", root / "run", "-o", root / "model.onnx"]) == 0
    return spec, root / "run", root / "model.onnx"


def with_metadata(src: Path, dst: Path, **changes: str) -> Path:
    model = onnx.load(str(src))
    props = {p.key: p.value for p in model.metadata_props}
    props.update({f"nasgraph.{k}": v for k, v in changes.items()})
    del model.metadata_props[:]
    for k, v in props.items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(dst))
    return dst


# -- predict ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("make,what", [
    (lambda good, p: p.write_text("hello, not a model\n"), "model.onnx"),
    (lambda good, p: p.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2]), "model.onnx"),
    (lambda good, p: p.write_bytes(b""), "empty file"),
    (lambda good, p: p.write_bytes(bytes(range(256)) * 8), "model.onnx")],
    ids=["text", "truncated", "empty", "binary-junk"])
def test_predict_on_a_file_that_is_not_a_model(exported, tmp_path, capsys, make, what):
    bad = tmp_path / "model.onnx"
    make(exported[2], bad)
    refused(capsys, ["predict", bad, "[MAX 1 2 ]"], str(bad), what, keep=(bad,))


@pytest.mark.parametrize("key,value,what", [
    ("class_names", "not json", "nasgraph.class_names"), ("class_names", '["a", "b", "c"]', "3 classes"),
    ("max_len", "abc", "nasgraph.max_len"), ("tokenizer", "{}", "nasgraph.tokenizer"),
    ("tokenizer", "[1, 2]", "nasgraph.tokenizer")])
def test_predict_with_bad_metadata(exported, tmp_path, capsys, key, value, what):
    bad = with_metadata(exported[2], tmp_path / "bad.onnx", **{key: value})
    refused(capsys, ["predict", bad, "1 2 3"], "bad.onnx", what, keep=(bad,))


@pytest.mark.parametrize("name,data,what", [
    ("inputs.txt", b"1 2\x00\x01\x02 3\n", "binary file"), ("inputs.txt", "caf\u00e9 1 2\n".encode("latin-1"),
                                                             "not UTF-8"),
    ("inputs.tsv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file")])
def test_predict_input_file_that_is_not_utf8_text(exported, tmp_path, capsys, name, data, what):
    src = tmp_path / name
    src.write_bytes(data)
    refused(capsys, ["predict", exported[2], src], name, what, keep=(src,))


def test_predict_missing_input_file_is_an_error_not_a_text(exported, tmp_path, capsys):
    refused(capsys, ["predict", exported[2], tmp_path / "inputs.txt"], "inputs.txt", "no such file")
    refused(capsys, ["predict", exported[2], "data.tsv"], "data.tsv", "--text")
    assert cli(["predict", exported[2], "--text", "a b"]) == 0


# -- bench -----------------------------------------------------------------------------------------
def test_bench_bad_options_fail_before_any_benchmark(exported, tmp_path, capsys, monkeypatch, write_spec):
    import exporters.bench as bench_module

    monkeypatch.setattr(bench_module, "bench", lambda *a, **k: pytest.fail("the benchmark ran"))
    spec, run, model = exported
    taken = tmp_path / "report.md"
    taken.write_text("mine")
    refused(capsys, ["bench", model, "--out", taken], "report.md", "is a file", keep=(taken,))
    refused(capsys, ["bench", model, "--out", tmp_path / "b", "--seq", "abc"], "--seq", "'abc'")
    refused(capsys, ["bench", model, "--out", tmp_path / "b", "--runs", tmp_path], "--runs", str(tmp_path))
    empty = write_spec(TRAIN.replace("seq_lens: [8]", "seq_lens: []"), "empty.yaml")
    refused(capsys, ["bench", empty, "--out", tmp_path / "b"], "empty.yaml", "bench.seq_lens", keep=(empty,))
    assert not (tmp_path / "b").exists() or not any(p.name != ".nasgraph-run.json" for p in (tmp_path / "b").iterdir())


def test_bench_never_loads_a_crafted_source_checkpoint(exported, tmp_path, capsys):
    flag = tmp_path / "payload-ran"
    evil = crafted_checkpoint(tmp_path / "weights.pt", flag)
    model = with_metadata(exported[2], tmp_path / "model.onnx", source=str(evil))
    assert cli(["bench", model, "--out", tmp_path / "b", "--no-progress"]) == 0
    assert not flag.exists()
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert "refused" in report["subjects"][0]["note"]


# -- derive / export on damaged run files --------------------------------------------------------------
@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from conftest import TINY

    root = tmp_path_factory.mktemp("searched")
    spec = root / "spec.yaml"
    spec.write_text(textwrap.dedent(TINY % {"granularity": "head", "strategy": "darts", "extra": ""}))
    assert cli(["search", spec, "--out", root / "run", "--no-progress"]) == 0
    return root / "run"


@pytest.mark.parametrize("damage,what", [
    (lambda t: t[: len(t) // 2], "damaged JSON"), (lambda t: "[]", "damaged search result"),
    (lambda t: t.replace('"choice": {', '"choice": {"L9.attention": [0], ', 1), "L9.attention"),
    (lambda t: json.dumps({**json.loads(t), "choice": {"L0.attention": [7, 0], "L1.attention": [0, 0]}}), "[7, 0]")],
    ids=["truncated", "not-an-object", "unknown-node", "index-out-of-range"])
def test_derive_from_a_damaged_search_json(searched, tmp_path, capsys, damage, what):
    run = Path(shutil.copytree(searched, tmp_path / "run"))
    result = run / "search.json"
    result.write_text(damage(result.read_text()))
    refused(capsys, ["derive", run, "-o", tmp_path / "d.yaml"], "search.json", what, keep=(run,))
    assert not (tmp_path / "d.yaml").exists()


def test_derive_from_a_train_run_and_export_to_a_folder(exported, tmp_path, capsys):
    spec, run, _ = exported
    refused(capsys, ["derive", run, "-o", tmp_path / "d.yaml"], str(run), "search run", keep=(run,))
    folder = tmp_path / "out"
    folder.mkdir()
    refused(capsys, ["export", run, "-o", folder, "--force"], "out", "is a folder", keep=(folder, run))


def test_export_with_a_damaged_task_json(exported, tmp_path, capsys):
    run = Path(shutil.copytree(exported[1], tmp_path / "run"))
    (run / "task.json").write_text('{"vocab": [')
    refused(capsys, ["export", run, "-o", tmp_path / "m.onnx"], "task.json", "damaged JSON", keep=(run,))


def test_resume_with_a_damaged_log_line_or_marker(exported, tmp_path, capsys):
    spec, run, _ = exported
    run = Path(shutil.copytree(run, tmp_path / "run"))
    lines = (run / "metrics.jsonl").read_text().splitlines()
    (run / "metrics.jsonl").write_text("\n".join(["{bad", *lines]) + "\n")
    refused(capsys, ["train", run / "spec.yaml", "--out", run, "--resume", "--no-progress"], "metrics.jsonl:1",
            keep=(run,))
    (run / ".nasgraph-run.json").write_text("{")
    refused(capsys, ["train", run / "spec.yaml", "--out", run, "--resume", "--no-progress"], ".nasgraph-run.json",
            keep=(run,))


# -- values compile accepts but a later command crashed on --------------------------------------------
@pytest.mark.parametrize("command,override,what", [
    ("train", "train.seed=-1", "train.seed"), ("search", "search.seeds=[]", "search.seeds"),
    ("train", "model.dropout=5", "model.dropout"), ("train", "task.n_train=1000000000", "n_train"),
    ("train", "bench.seq_lens=[]", "bench.seq_lens")])
def test_values_refused_before_any_work(tiny_spec, write_spec, tmp_path, capsys, command, override, what):
    spec = tiny_spec() if command == "search" else write_spec(TRAIN, "train.yaml")
    out = tmp_path / "out"
    argv = [command, spec, "--out", out, "--set", override, "--no-progress"]
    refused(capsys, argv, what, keep=(spec,))
    assert not out.exists()


def test_a_head_with_fewer_classes_than_the_task(write_spec, tmp_path, capsys):
    spec = write_spec(NODES.replace("num_classes: 2", "num_classes: 1"), "nodes.yaml")
    refused(capsys, ["train", spec, "--out", tmp_path / "run", "--no-progress"], "nodes.yaml", "the task has 2",
            keep=(spec,))


def test_train_threads_beyond_the_machine_are_capped_with_a_note(write_spec, tmp_path, capsys):
    spec = write_spec(TRAIN, "train.yaml")
    try:
        assert cli(["train", spec, "--out", tmp_path / "run", "--no-progress", "--set", "train.threads=100000"]) == 0
    finally:
        torch.set_num_threads(1)
    assert "train.threads 100000 >" in capsys.readouterr().err


@pytest.mark.parametrize("suffix,data", [(".tsv", b"text\tlabel\n\x00\xff\xfe\x00\x01\tpos\n"),
                                         (".csv", bytes(range(256)) * 4)])
def test_text_task_on_a_binary_table(write_spec, tmp_path, capsys, suffix, data):
    table = tmp_path / f"data{suffix}"
    table.write_bytes(data)
    spec = write_spec(f"""
        name: text
        task: {{kind: text, path: {table}, max_len: 32}}
        model: {{d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}}
        train: {{steps: 2, batch_size: 4}}
        """, "text.yaml")
    refused(capsys, ["train", spec, "--out", tmp_path / "run", "--no-progress"], f"data{suffix}", "binary file",
            keep=(table,))
