"""Hostile specs (issue 9): odd bytes, YAML 1.1 surprises, resource bombs and values that used to be
silently wrong. Each is accepted as YAML allows or refused with one located line naming the key."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from nasgraph.errors import SpecError
from nasgraph.graph import compile_spec
from nasgraph.spec import load_spec
from spec_error_cases import GRAPH_HEAD

ROOT = Path(__file__).resolve().parents[1]
HEAD = GRAPH_HEAD                                        # no n_layers: GOOD adds it, GRAPH does not
GOOD = HEAD + "  n_layers: 2\n  attention: [softmax, linear]\n"
GRAPH = HEAD + """\
  graph:
    - embedding: {}
    - residual: [{norm: {}}, {attention: softmax}]
    - pool: cls
    - head: {}
"""


def refuse(tmp_path: Path, text: str | bytes, overrides=(), compile=False) -> SpecError:
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
    with pytest.raises(SpecError) as info:
        doc = load_spec(path, overrides)
        if compile:
            compile_spec(doc)
    err = info.value
    assert "\n" not in str(err) and str(err).startswith((str(path), "<--set ")), str(err)
    return err


def accept(tmp_path: Path, text: str | bytes):
    path = tmp_path / "spec.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return load_spec(path)


# -- bytes and YAML ------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, path, message", [
    (b"\x00\x01binary\x00", "", "a binary file"),
    (GOOD.encode() + b"train: {steps: \xff}\n", "train", "not UTF-8 text (byte 0xff)"),
    (GOOD + "train: {steps: 5\x07}\n", "train", "character U+0007 is not allowed"),
    (GOOD.replace("name: demo", 'name: "de\\udcffmo"'), "name", "lone surrogate"),
    (GOOD + "bench: {seq_lens: " + "[" * 100 + "1" + "]" * 100 + "}\n", "bench", "nested deeper than 64 levels"),
    (GOOD + "bench: " + "[" * 100_000 + "]" * 100_000 + "\n", "bench", "nested deeper than 64 levels"),
    (GOOD + "train:\n  steps: " + "9" * 5000 + "\n", "train.steps", "integer with 5000 digits is beyond"),
    (GOOD + f"train:\n  steps: {2 ** 63}\n", "train.steps", "beyond the 64-bit range"),
    (GOOD.replace("d_model: 32", "d_model: 064"), "model.d_model", "YAML 1.1 reads as octal (52)"),
    (GOOD + "train: {steps: 1:30}\n", "train.steps", "base-60 number"),
    (GOOD + "train: {steps: true}\n", "train.steps", "true is a boolean, not a number"),
    (GOOD + "search: {strategy: gdas, tau: [1.0, yes]}\n", "search.tau[1]", "true is a boolean, not a number"),
    (GOOD + "train: {lr: .inf}\n", "train.lr", "finite number"),
    (GOOD + "train: {lr: .nan}\n", "train.lr", "finite number"),
    (GOOD + "x: &a [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"x{i}: &a{i} [{', '.join(['*a' if i == 0 else f'*a{i - 1}'] * 10)}]\n" for i in range(6)),
     "x", "more than 50,000 values"),
    (GOOD + "# " + "x" * (1 << 20) + "\n", "", "a spec is at most 1,048,576 bytes"),
], ids=["binary", "not-utf8", "control-char", "lone-surrogate", "deep-100", "deep-100000", "int-5000-digits",
        "int-past-int64", "octal", "base-60", "bool-as-int", "bool-in-tuple", "inf", "nan", "alias-bomb",
        "oversized"])
def test_odd_yaml_is_refused_with_key(text, path, message, tmp_path: Path):
    err = refuse(tmp_path, text)
    assert err.path.startswith(path) and message in err.message, str(err)


def test_yaml_allowances(tmp_path: Path):
    """A BOM, CRLF, YAML 1.2 exponents and integral floats are read as meant."""
    doc = accept(tmp_path, ("\ufeff" + GOOD + "train: {lr: 1e-3, steps: 2e3}\n").replace("\n", "\r\n"))
    assert doc.spec.train.lr == 0.001 and doc.spec.train.steps == 2000


def test_wide_mapping_is_linear(tmp_path: Path):
    """A mapping with 20,000 keys: one error (the first unknown key), not a quadratic scan."""
    err = refuse(tmp_path, GOOD + "bench:\n" + "".join(f"  k{i}: {i}\n" for i in range(20_000)))
    assert err.path == "bench.k0" and "unknown key" in err.message


# -- resource bombs: refused from the estimate, before anything is allocated ---------------------------
@pytest.mark.parametrize("overrides, path, message", [
    (["model.d_model=1048576"], "model", "past nasgraph's limit"),
    (["model.n_layers=1000000000"], "model.n_layers", "more than 20,000 graph nodes"),
    (["task.max_len=10000000", "task.min_len=20"], "model.attention", "one forward pass of one sequence"),
    (["model.attention={local: {window: 1000000000000}}"], "model.attention", "too large to be sized"),
    (["task.n_train=1000000000"], "task.n_train", ""),             # the kind's own cap, or MAX_EXAMPLES
    (["task.max_depth=1000000"], "task.max_depth", "the generator would run for hours"),
], ids=["d_model", "n_layers", "max_len", "window", "n_train", "listops-depth"])
def test_resource_bombs_are_refused_with_the_estimate(overrides, path, message, tmp_path: Path):
    err = refuse(tmp_path, GOOD, overrides, compile=True)
    assert err.path.startswith(path) and message in err.message, str(err)


def test_vocabulary_bomb(tmp_path: Path):
    text = HEAD.replace("{kind: listops, max_len: 101, min_len: 20, max_depth: 3}",
                        "{kind: assoc_recall, max_len: 64, n_keys: 1000000, n_values: 1000000}")
    err = refuse(tmp_path, text + "  n_layers: 1\n  attention: softmax\n", compile=True)
    assert "training needs about" in err.message and "parameters" in err.message, str(err)


def test_force_builds_past_a_limit(tmp_path: Path, monkeypatch):
    import nasgraph.graph.resources as resources

    monkeypatch.setattr(resources, "MAX_FORWARD_FLOPS", 1000)
    path = tmp_path / "spec.yaml"
    path.write_text(GOOD)
    with pytest.raises(SpecError, match="past nasgraph's limit of 1e3"):
        compile_spec(load_spec(path))
    assert compile_spec(load_spec(path), force=True).graph["output"] == "head"


def test_estimate_matches_the_built_model(tmp_path: Path):
    from nasgraph.graph.resources import estimate
    from nasgraph.model import GraphModule

    graph = compile_spec(accept(tmp_path, GOOD))
    assert estimate(graph).params == sum(p.numel() for p in GraphModule(graph).parameters())


def test_space_size_with_thousands_of_digits_is_printed_compactly():
    from nasgraph.commands.compile import render
    from nasgraph.graph.summary import ChoicePoint, Summary

    ones = {f"t{j}": 1 for j in range(17)}
    points = [ChoicePoint(f"a{i}", "head", list(ones), ones, ones, ones, heads=8) for i in range(12)]
    summary = Summary("big", 1, 1, 8, 1, 1, 1, points)
    assert summary.space_size == 17 ** 96
    assert "search space: 1.3e118 architectures" in render(summary)
    assert summary.to_json()["space_size"] == "1.3e118"
    points[0].heads = 10_000                                    # 17^10000: past str()'s 4300 digits
    assert "e12" in summary.to_json()["space_size"] and "e12" in render(summary)


# -- values that were silently ignored or wrong --------------------------------------------------------
@pytest.mark.parametrize("extra, path", [
    ("  n_layers: 4\n", "model.n_layers"),
    ("  attention: softmax\n", "model.attention"),
    ("  layers: [{}]\n", "model.layers"),
    ("  norm: {placement: post}\n", "model.norm.placement"),
], ids=["n_layers", "attention", "layers", "norm-placement"])
def test_standard_encoder_keys_in_graph_form_are_errors(extra, path, tmp_path: Path):
    err = refuse(tmp_path, GRAPH + extra)
    assert err.path == path and "has no effect with 'graph'" in err.message


@pytest.mark.parametrize("text, path, message", [
    (GRAPH.replace("    - head: {}\n", ""), "model.graph[2].pool", "end the graph with a head"),
    (GRAPH.replace("head: {}", "head: {num_classes: 16}"), "model.graph[3].head", "gives 16 classes but the task has 10"),
    (HEAD + """\
  nodes:
    emb: {op: embedding}
    a.b: {op: norm, inputs: [emb]}
    a__b: {op: norm, inputs: [a.b]}
    pool: {op: pool, inputs: [a__b]}
    head: {op: head, inputs: [pool]}
""", "model.nodes.a__b.op", "would share one module"),
    (HEAD + "  nodes:\n    emb: {op: embedding}\n    pool: {op: pool, inputs: 5}\n    head: {op: head, inputs: [pool]}\n",
     "model.nodes.pool.inputs", "'inputs' is a node name or a non-empty list"),
    (HEAD + "  nodes:\n    emb: {op: embedding}\n    pool: {op: pool, inputs: [3]}\n    head: {op: head, inputs: [pool]}\n",
     "model.nodes.pool.inputs[0]", "an input is a node name"),
    (GOOD + "  ffn: {mult: 0.001}\n", "model.ffn", "gives 0 hidden units"),
], ids=["no-head", "head-classes", "name-collision", "inputs-number", "input-item-number", "ffn-zero"])
def test_silent_results_are_compile_errors(text, path, message, tmp_path: Path):
    err = refuse(tmp_path, text, compile=True)
    assert err.path == path and message in err.message, str(err)


@pytest.mark.parametrize("extra, path, message", [
    ("search: {strategy: gdas, tau: [0, 1]}\n", "search.tau[0]", "greater than 0"),
    ("search: {objective: {flops: {target: 5}}}\n", "search.objective.flops.target", "less than or equal to 1"),
    ("train: {lr: .inf}\n", "train.lr", "finite"),
    ("train: {seed: -1}\n", "train.seed", "greater than or equal to 0"),
    ("bench: {seq_lens: []}\n", "bench.seq_lens", "at least 1 item"),
], ids=["tau", "flops-target", "lr-inf", "seed", "empty-seq-lens"])
def test_out_of_range_values(extra, path, message, tmp_path: Path):
    err = refuse(tmp_path, GOOD + extra)
    assert err.path == path and message in err.message, str(err)


def test_empty_layer_list(tmp_path: Path):
    err = refuse(tmp_path, HEAD + "  attention: softmax\n  layers: []\n")
    assert err.path == "model.layers" and "at least 1 item" in err.message


@pytest.mark.parametrize("override, message", [
    ("model.atention.candidates=[softmax]", "the nearest valid path is model.attention.candidates"),
    ("task.max_lenn=5", "the nearest valid path is task.max_len"),
    ("nosuch.key=1", "valid keys in the top level: name, "),
    ("model.layers[0].attention=softmax", "a list item can be set only when the list is there"),
])
def test_override_of_a_path_not_in_the_schema(override, message, tmp_path: Path):
    err = refuse(tmp_path, GOOD, [override])
    assert err.file == f"<--set {override}>" and message in err.message, str(err)


# -- the real process: no traceback under a memory limit -----------------------------------------------
def _limit_memory():
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))


@pytest.mark.parametrize("text, overrides", [
    (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)), []),
    ((GOOD + "bench: " + "[" * 200_000 + "]" * 200_000 + "\n").encode(), []),
    (GOOD.encode(), ["model.d_model=1048576"]),
    (GOOD.encode(), ["name=\udcff"]),
], ids=["elf-binary", "deep-nesting", "d_model-bomb", "surrogate-override"])
def test_cli_process_hostile_spec_one_line(text, overrides, tmp_path: Path):
    (tmp_path / "spec.yaml").write_bytes(text)
    args = [a for o in overrides for a in ("--set", o)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-m", "nasgraph", "compile", "spec.yaml", *args], cwd=tmp_path,
                            capture_output=True, env=env, timeout=300, preexec_fn=_limit_memory)
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("nasgraph compile: error: "), err


# -- options that depend on the heads a type runs with -------------------------------------------------
@pytest.mark.parametrize("attention, path, heads", [
    ("{candidates: [softmax: {n_kv_heads: 3}, linear]}", "model.attention.candidates[0].softmax.n_kv_heads", 4),
    ("{granularity: head, candidates: [softmax: {n_kv_heads: 2}, linear]}",
     "model.attention.candidates[0].softmax.n_kv_heads", 1),       # per head: a derived layer may give it one head
    ("{heads: [softmax: {n_kv_heads: 2}, linear, linear, linear]}", "model.attention.heads[0].softmax.n_kv_heads", 1),
], ids=["layer", "per-head-choice", "heads-list"])
def test_n_kv_heads_that_cannot_divide_the_heads_is_located(attention, path, heads, tmp_path: Path):
    """Used to pass the load and fail in compile: unlocated (per head) or as 'too large to be sized'."""
    err = refuse(tmp_path, HEAD + f"  n_layers: 1\n  attention: {attention}\n")
    assert err.path == path and f"does not divide the {heads} heads" in err.message, str(err)


def test_n_kv_heads_dividing_its_group_is_accepted(tmp_path: Path):
    heads = "[softmax: {n_kv_heads: 2}, softmax: {n_kv_heads: 2}, linear, linear]"   # a group of 2 softmax heads
    text = HEAD + f"  n_layers: 1\n  attention: {{heads: {heads}}}\n"
    assert compile_spec(accept(tmp_path, text)).graph["output"] == "head"


def test_performer_feature_bomb_is_refused_at_load(tmp_path: Path):
    """n_features 2**62 drew 2**62 / d QR blocks on the meta device while sizing: a hang (fuzz seed 2, case 76)."""
    err = refuse(tmp_path, HEAD + "  n_layers: 1\n  attention: {performer: {n_features: 4611686018427387904}}\n")
    assert err.path == "model.attention.performer.n_features", str(err)
    assert "less than or equal to 1048576" in err.message, str(err)


@pytest.mark.parametrize("path", ['"\\0"', "loop"])
def test_a_data_path_that_cannot_be_resolved_is_located(write_spec, tmp_path, path):
    """fuzz_specs --seed 5 case 294: task.path "\\0" ended in pathlib's ValueError (embedded null byte)
    traceback; a symlink loop in RuntimeError's."""
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    spec = write_spec(f"name: x\ntask: {{kind: lm, path: {path}, max_len: 16}}\n"
                      "model: {d_model: 16, n_heads: 2, n_layers: 1, attention: softmax}\n")
    with pytest.raises(SpecError, match="not a usable file path") as err:
        load_spec(spec)
    assert err.value.path == "task.path" and err.value.line == 2, str(err.value)
