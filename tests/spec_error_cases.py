"""The corpus of malformed specs for tests/test_spec_errors.py: each Case gives the spec text, where the error
must point (line:col), its key path and a part of its message."""
from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from nasgraph import attention

NONCAUSAL = next((n for n in attention.names() if not attention.get(n).caps.causal), None)

HEAD = """\
name: demo
task: {kind: listops, max_len: 101, min_len: 20, max_depth: 3}
model:
  d_model: 32
  n_heads: 4
  n_layers: 2
"""
GRAPH_HEAD = HEAD.replace("  n_layers: 2\n", "")   # the graph forms have no n_layers
GOOD = HEAD + """\
  attention:
    candidates: [softmax, linear]
"""


@dataclass
class Case:
    id: str
    text: str | None      # None: no file at all
    where: str | None     # "line:col", or None when the error has no line (missing file, override)
    path: str             # the key path printed after the location
    message: str          # a part of the message that must be there
    overrides: tuple[str, ...] = ()
    compile: bool = False  # the error comes from the graph compiler
    file: str | None = None  # expected file label when it is not the spec file


def case(id, text, where, path, message, marks=(), **kw):
    return pytest.param(Case(id, textwrap.dedent(text) if text else text, where, path, message, **kw), id=id,
                        marks=marks)


def need(name: str | None, flag: str):
    return [pytest.mark.skip(reason=f"no registered attention type with {flag}")] if name is None else []


CASES = [
    # -- unknown keys, with did-you-mean ----------------------------------------------------------
    case("unknown-top-level", GOOD + "trian: {steps: 3}\n", "9:1", "trian",
         "unknown key 'trian' (did you mean 'train'?)"),
    case("unknown-model-key", GOOD + "  dropuot: 0.1\n", "9:3", "model.dropuot",
         "unknown key 'dropuot' (did you mean 'dropout'?)"),
    case("typo-hides-required", GOOD.replace("d_model: 32", "d_modle: 32"), "4:3", "model.d_modle",
         "unknown key 'd_modle' (did you mean 'd_model'?)"),
    case("unknown-attention-key", GOOD + "    granularty: head\n", "9:5", "model.attention.granularty",
         "(did you mean 'granularity'?)"),
    case("unknown-attention-option", HEAD + "  attention:\n    candidates: [softmax, {local: {windw: 8}}]\n",
         "8:36", "model.attention.candidates[1].local.windw", "unknown option 'windw' (did you mean 'window'?)"),
    case("unknown-search-objective-key", GOOD + "search:\n  objective:\n    flop: {weight: 0.1}\n", "11:5",
         "search.objective.flop", "(did you mean 'flops'?)"),
    # -- wrong types and values -------------------------------------------------------------------
    case("wrong-type-int", GOOD.replace("d_model: 32", "d_model: big"), "4:3", "model.d_model",
         "valid integer"),
    case("wrong-type-name", GOOD.replace("name: demo", "name: [a, b]"), "1:1", "name", "valid string"),
    case("wrong-type-section", GOOD + "train: 5\n", "9:1", "train", "valid dictionary"),
    case("bad-literal", GOOD + "    granularity: channel\n", "9:5", "model.attention.granularity",
         "Input should be 'layer' or 'head' (got 'channel')"),
    case("out-of-range", GOOD + "train:\n  lr: -1\n", "10:3", "train.lr", "greater than 0"),
    case("candidate-wrong-type", HEAD + "  attention:\n    candidates:\n      - softmax\n      - 5\n", "10:9",
         "model.attention.candidates[1]", "valid string, or a valid dictionary (got 5)"),
    case("tuple-too-short", GOOD + "search: {strategy: gdas, tau: [1.0]}\n", "9:26", "search.tau[1]",
         "option 'tau.1': Field required"),
    # -- missing keys: placed at the parent --------------------------------------------------------
    case("missing-model-key", GOOD.replace("  n_heads: 4\n", ""), "3:1", "model.n_heads",
         "missing required key 'n_heads'"),
    case("missing-top-level", GOOD.replace("name: demo\n", ""), "1:1", "name", "missing required key 'name'"),
    case("missing-attention", HEAD, "3:1", "model", "missing 'attention'"),
    case("candidates-and-heads", GOOD + "    heads: [softmax, softmax, linear, linear]\n", "7:3",
         "model.attention", "exactly one of 'candidates'"),
    case("layers-count-mismatch", HEAD + "  layers:\n    - attention: softmax\n", "3:1", "model",
         "n_layers is 2 but 'layers' lists 1"),
    # -- attention semantics ----------------------------------------------------------------------
    case("unknown-attention", HEAD + "  attention:\n    candidates:\n      - softmax\n      - softmaxx\n",
         "10:9", "model.attention.candidates[1]", "unknown attention 'softmaxx' (did you mean 'softmax'?); valid:"),
    case("unknown-attention-shorthand", HEAD + "  attention: linaer\n", "7:3", "model.attention",
         "unknown attention 'linaer' (did you mean 'linear'?)"),
    case("unknown-attention-in-layers", HEAD + "  layers:\n    - attention: softmax\n    - attention: softmaxx\n",
         "9:7", "model.layers[1].attention", "unknown attention 'softmaxx'"),
    case("bad-attention-option", HEAD + "  attention:\n    candidates:\n      - softmax: {impl: fast}\n",
         "9:19", "model.attention.candidates[0].softmax.impl", "option 'impl'"),
    case("candidate-two-keys", HEAD + "  attention:\n    candidates: [{softmax: {}, linear: {}}]\n", "8:18",
         "model.attention.candidates[0]", "one-key mapping"),
    case("duplicate-candidate", GOOD.replace("[softmax, linear]", "[softmax, linear, softmax]"), "8:35",
         "model.attention.candidates[2]", "repeats candidate [0]"),
    case("not-divisible", GOOD.replace("d_model: 32", "d_model: 30"), "5:3", "model.n_heads",
         "d_model 30 is not divisible by n_heads 4"),
    case("heads-wrong-length", HEAD + "  attention:\n    heads: [softmax, linear]\n", "8:5", "model.attention.heads",
         "'heads' lists 2 types but n_heads is 4"),
    case("unknown-per-head-type", HEAD + "  attention:\n    heads: [softmax, linear, softmax, lineer]\n", "8:39",
         "model.attention.heads[3]", "unknown attention 'lineer'"),
    case("causal-without-causal-form", GOOD.replace("linear]", f"{NONCAUSAL}]") + "    causal: true\n", "8:27",
         "model.attention.candidates[1]", f"attention '{NONCAUSAL}' has no causal form",
         marks=need(NONCAUSAL, "caps.causal False")),
    # -- task --------------------------------------------------------------------------------------
    case("unknown-task-kind", GOOD.replace("kind: listops", "kind: listopz"), "2:8", "task.kind",
         "unknown task kind 'listopz' (did you mean 'listops'?)"),
    case("bad-task-option", GOOD.replace("max_depth: 3", "max_dept: 3"), "2:50", "task.max_dept",
         "unknown option 'max_dept' (did you mean 'max_depth'?)"),
    case("task-option-type", GOOD.replace("min_len: 20", "min_len: twenty"), "2:37", "task.min_len",
         "option 'min_len'"),
    # -- YAML itself -------------------------------------------------------------------------------
    case("python-tag", "name: !!python/object/apply:os.system ['echo pwned']\n" + GOOD[11:], "1:7", "name",
         "tag '!!python/object/apply:os.system' is not allowed"),
    case("custom-tag", GOOD + "train: !include train.yaml\n", "9:8", "train", "tag '!include' is not allowed"),
    case("binary-tag", GOOD.replace("name: demo", "name: !!binary aGVsbG8="), "1:7", "name",
         "tag '!!binary' is not allowed"),
    case("duplicate-key", GOOD + "  n_heads: 8\n", "9:3", "model.n_heads", "duplicate key 'n_heads' (first given at line 5)"),
    case("duplicate-top-level", GOOD + "name: again\n", "9:1", "name", "duplicate key 'name'"),
    case("boolean-key", GOOD + "yes: 1\n", "9:1", "yes", "keys must be strings"),
    case("empty-file", "", "1:1", "", "spec file is empty"),
    case("comments-only", "# nothing here\n\n", "1:1", "", "spec file is empty"),
    case("not-a-mapping", "- softmax\n- linear\n", "1:1", "", "must be a mapping"),
    case("scalar-document", "just text\n", "1:1", "", "must be a mapping"),
    case("two-documents", GOOD + "---\nname: other\n", "9:1", "", "one YAML document"),
    case("missing-file", None, None, "", "spec file not found"),
    case("syntax-unclosed-flow", GOOD.replace("[softmax, linear]", "[softmax, linear"), "9:1", "model.attention.candidates",
         "YAML syntax error"),
    case("syntax-bad-indent", GOOD.replace("  n_layers: 2", "  n_layers: 2\n   bad: 1"), "7:7", "model.n_layers.bad",
         "YAML syntax error: mapping values are not allowed here"),
    case("syntax-tab", GOOD.replace("  n_heads: 4", "\tn_heads: 4"), "5:1", "model.n_heads", "YAML syntax error"),
    case("merge-key-explicit-wins", HEAD + """\
  layers:
    - &base {attention: softmax, ffn: {mult: 2}}
    - <<: *base
      attention: softmaxx
""", "10:7", "model.layers[1].attention", "unknown attention 'softmaxx'"),
    case("merge-key-located-in-anchor", HEAD + """\
  layers:
    - &base {attention: softmax, ffn: {mult: 2, hiden: 8}}
    - {<<: *base, attention: linear}
""", "8:49", "model.layers[0].ffn.hiden", "unknown key 'hiden' (did you mean 'hidden'?)"),
    # -- overrides ---------------------------------------------------------------------------------
    case("override-unknown-key", GOOD, None, "train.stepz", "no such key in the spec; the nearest valid path is train.steps",
         overrides=("train.stepz=5",), file="<--set train.stepz=5>"),
    case("override-wrong-type", GOOD, None, "train.steps", "valid integer", overrides=("train.steps=many",),
         file="<--set train.steps=many>"),
    case("override-no-equals", GOOD, None, "", "KEY.PATH=VALUE", overrides=("train.steps",),
         file="<--set train.steps>"),
    case("override-bad-path", GOOD, None, "", "malformed key path", overrides=("model..d_model=3",),
         file="<--set model..d_model=3>"),
    case("override-through-scalar", GOOD, None, "model.d_model.x", "model.d_model is int 32, not a mapping",
         overrides=("model.d_model.x=1",), file="<--set model.d_model.x=1>"),
    case("override-index-out-of-range", GOOD, None, "model.attention.candidates[5]", "out of range",
         overrides=("model.attention.candidates[5]=local",), file="<--set model.attention.candidates[5]=local>"),
    case("override-bad-value", GOOD, None, "train.steps", "YAML syntax error", overrides=("train.steps=[1,",),
         file="<--set train.steps=[1,>"),
    case("override-unknown-attention", GOOD, None, "model.attention.candidates[1]", "unknown attention 'lin'",
         overrides=("model.attention.candidates=[softmax, lin]",),
         file="<--set model.attention.candidates=[softmax, lin]>"),
    # -- graph forms: errors raised by the compiler through doc.error ------------------------------
    case("graph-missing-input", GRAPH_HEAD + """\
  nodes:
    emb: {op: embedding}
    att: {op: attention, inputs: [embb], candidates: [softmax]}
    pool: {op: pool, inputs: [att]}
    head: {op: head, inputs: [pool]}
""", "8:35", "model.nodes.att.inputs[0]", "input 'embb' is not a node (did you mean 'emb'?)", compile=True),
    case("graph-cycle", GRAPH_HEAD + """\
  nodes:
    emb: {op: embedding}
    a: {op: add, inputs: [emb, b]}
    b: {op: attention, inputs: [a], candidates: [softmax]}
    pool: {op: pool, inputs: [b]}
    head: {op: head, inputs: [pool]}
""", "9:9", "model.nodes.b.op", "the graph has a cycle", compile=True),
    case("graph-shape-mismatch", GRAPH_HEAD + """\
  graph:
    - embedding: {}
    - attention: softmax
    - head: {}
""", "9:7", "model.graph[2].head", "head expects input of shape (B, 32), got (B, T, 32)", compile=True),
    case("graph-two-outputs", GRAPH_HEAD + """\
  nodes:
    emb: {op: embedding}
    pool: {op: pool, inputs: [emb]}
    head: {op: head, inputs: [pool]}
    head2: {op: head, inputs: [pool]}
""", "10:13", "model.nodes.head2.op", "must have one output, found 2", compile=True),
    case("graph-sequence-above-bound", GRAPH_HEAD + """\
  graph:
    - embedding: {max_len: 50}
    - pool: cls
    - head: {}
""", "7:7", "model.graph[0].embedding", "sequence length 101 (task.max_len) exceeds the embedding's max_len 50",
         compile=True),
    case("graph-unknown-attention", GRAPH_HEAD + """\
  graph:
    - embedding: {}
    - residual: [{norm: {}}, {attention: {candidates: [softmax, linaer]}}]
    - pool: cls
    - head: {}
""", "8:65", "model.graph[1].residual[1].attention.candidates[1]", "unknown attention 'linaer'", compile=True),
]
