"""Good specs load; overrides, locations, dump round-trips and the JSON Schema behave."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nasgraph.cli import main
from nasgraph.errors import NasgraphError
from nasgraph.spec import Location, dump_spec, format_path, load_spec, parse_path, spec_to_data
from nasgraph.spec.schema import Spec

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "specs").glob("*.yaml"))
DOC_SPECS = re.findall(r"```yaml\n(name: .*?)```", (ROOT / "docs" / "spec.md").read_text(), re.S)

SPEC = """\
name: demo            # line 1
task: {kind: listops, max_len: 101, min_len: 20, max_depth: 3}
model:
  d_model: 32
  n_heads: 4
  n_layers: 2
  attention:
    granularity: head
    candidates:
      - softmax
      - local: {window: 8}
train: {steps: 10}
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_load(path: Path):
    doc = load_spec(path)
    assert doc.spec.name and doc.path == str(path)


@pytest.mark.parametrize("text", DOC_SPECS, ids=[t.split("\n")[0][6:] for t in DOC_SPECS])
def test_docs_examples_load_and_compile(text: str, tmp_path: Path):
    from nasgraph.graph import compile_spec

    graph = compile_spec(load_spec(write(tmp_path, text)))
    assert graph.graph["output"]


def test_docs_have_examples():
    assert len(DOC_SPECS) >= 6


def test_good_spec_loads_with_locations(tmp_path: Path):
    doc = load_spec(write(tmp_path, SPEC))
    assert doc.spec.model.attention.candidates == ["softmax", {"local": {"window": 8}}]
    assert doc.spec.model.attention.granularity == "head"
    assert doc.spec.train.steps == 10 and doc.spec.train.lr == 1e-3       # default kept
    file = str(tmp_path / "spec.yaml")
    assert doc.locations[("model", "attention", "candidates", 1)] == Location(file, 11, 9)
    assert doc.locations[("model", "attention", "candidates", 1, "local", "window")] == Location(file, 11, 17)
    assert doc.locations[("train", "steps")] == Location(file, 12, 9)
    assert doc.raw["model"]["n_layers"] == 2


def test_doc_error_uses_nearest_located_ancestor(tmp_path: Path):
    doc = load_spec(write(tmp_path, SPEC))
    err = doc.error("no such node", ("model", "attention", "candidates", 1, "local", "nope", 3))
    assert (err.line, err.col) == (11, 9)   # the `local` key
    assert str(err) == f"{tmp_path / 'spec.yaml'}:11:9: model.attention.candidates[1].local.nope[3]: no such node"
    assert doc.error("x", "model.n_heads").line == 5          # a text path works too
    assert doc.error("x", ()).path == "" and doc.error("x", ()).line == 1


@pytest.mark.parametrize("text", ["model.layers[2].attention.candidates[1]", "a", "a[0][1].b", "nodes['a.b'].op"])
def test_key_path_round_trip(text: str):
    assert format_path(parse_path(text)) == text


def test_overrides_apply_and_are_located(tmp_path: Path):
    doc = load_spec(write(tmp_path, SPEC), ["train.steps=200", "model.attention.candidates=[softmax, linear]",
                                            "search.objective.flops.weight=0.2", "model.dropout=0.1"])
    assert doc.spec.train.steps == 200
    assert doc.spec.model.attention.candidates == ["softmax", "linear"]
    assert doc.spec.search.objective.flops.weight == 0.2       # intermediate mappings created
    assert doc.spec.model.dropout == 0.1
    assert doc.location(("train", "steps")) == Location("<--set train.steps=200>")
    origin = "<--set model.attention.candidates=[softmax, linear]>"
    assert doc.location(("model", "attention", "candidates", 1)) == Location(origin)
    assert doc.location(("model", "attention", "granularity")).line == 8   # untouched keys keep theirs


def test_override_of_list_item_and_later_override_wins(tmp_path: Path):
    doc = load_spec(write(tmp_path, SPEC), ["model.attention.candidates[1]={local: {window: 4}}",
                                            "train.steps=5", "train.steps=6"])
    assert doc.spec.model.attention.candidates[1] == {"local": {"window": 4}}
    assert doc.spec.train.steps == 6


def test_layers_list_and_shorthands(tmp_path: Path):
    text = SPEC.replace("  n_layers: 2\n", "").replace("train: {steps: 10}\n", "").split("  attention:")[0] + """\
  layers:
    - attention: softmax
    - attention: [softmax, linear]
    - attention: {local: {window: 4}}
"""
    doc = load_spec(write(tmp_path, text))
    layers = doc.spec.model.layers
    assert [l.attention.candidates for l in layers] == [["softmax"], ["softmax", "linear"], [{"local": {"window": 4}}]]


def test_anchors_and_merge_keys(tmp_path: Path):
    text = SPEC.replace("  n_layers: 2\n", "").split("  attention:")[0] + """\
  layers:
    - &base {attention: softmax, ffn: {mult: 2}}
    - {<<: *base, attention: linear}
"""
    doc = load_spec(write(tmp_path, text))
    first, second = doc.spec.model.layers
    assert second.attention.candidates == ["linear"] and second.ffn.mult == 2
    assert doc.locations[("model", "layers", 1, "ffn")] == doc.locations[("model", "layers", 0, "ffn")]
    assert doc.locations[("model", "layers", 1, "attention")] == Location(doc.path, 8, 19)


def test_per_head_model(tmp_path: Path):
    text = SPEC.split("  attention:")[0] + "  attention:\n    heads: [softmax, softmax, linear, {local: {window: 8}}]\n"
    doc = load_spec(write(tmp_path, text))
    assert len(doc.spec.model.attention.heads) == doc.spec.model.n_heads


def test_graph_forms_load(tmp_path: Path):
    head = SPEC.split("  n_layers")[0]
    compact = head + """\
  graph:
    - embedding: {}
    - repeat: 2
      body:
        - residual: [{norm: {}}, {attention: {candidates: [softmax, linear]}}]
        - residual: [{norm: {}}, {ffn: {}}]
    - pool: cls
    - head: {}
"""
    explicit = head + """\
  nodes:
    emb: {op: embedding}
    att: {op: attention, inputs: [emb], candidates: [softmax, linear]}
    add: {op: add, inputs: [emb, att]}
    pool: {op: pool, inputs: [add]}
    head: {op: head, inputs: [pool]}
"""
    assert load_spec(write(tmp_path, compact, "a.yaml")).spec.model.graph[1]["repeat"] == 2
    assert load_spec(write(tmp_path, explicit, "b.yaml")).spec.model.nodes["att"]["inputs"] == ["emb"]


def test_dump_round_trips_and_refuses_to_overwrite(tmp_path: Path):
    doc = load_spec(write(tmp_path, SPEC), ["train.grad_clip=null"])
    out = dump_spec(doc.spec, tmp_path / "derived" / "spec.yaml")
    again = load_spec(out)
    assert again.spec == doc.spec and again.spec.train.grad_clip is None   # explicit null survives
    assert "graph" not in again.raw["model"]                                # unused forms left out
    with pytest.raises(NasgraphError, match="already exists"):
        dump_spec(doc.spec, out)
    dump_spec(doc.raw, out, overwrite=True)
    assert load_spec(out).spec == doc.spec
    assert list(tmp_path.joinpath("derived").iterdir()) == [out]            # no temporary files left


def test_spec_to_data_is_plain():
    spec = Spec.model_validate({"name": "x", "task": {"kind": "listops", "max_len": 10},
                                "model": {"d_model": 8, "n_heads": 2, "n_layers": 1, "attention": "softmax"}})
    data = spec_to_data(spec)
    assert json.loads(json.dumps(data)) == data
    assert data["search"]["seeds"] == [0] and data["model"]["attention"]["candidates"] == ["softmax"]


def test_schema_command_prints_json_schema(capsys):
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].endswith("2020-12/schema") and schema["$id"] and schema["title"]
    assert set(schema["properties"]) == {"name", "plugins", "task", "model", "search", "train", "export", "bench"}
    assert set(schema["required"]) == {"name", "task", "model"}
    candidate = schema["$defs"]["AttentionCandidate"]["anyOf"]
    from nasgraph import attention
    assert candidate[0]["enum"] == attention.names()
    assert set(candidate[1]["properties"]) == set(attention.names())
    from nasgraph import tasks
    assert [k["properties"]["kind"]["const"] for k in schema["properties"]["task"]["oneOf"]] == tasks.kinds()
    local = candidate[1]["properties"]["local"]["anyOf"][0]
    assert "window" in local["properties"] and local["additionalProperties"] is False


def test_schema_refs_resolve(capsys):
    main(["schema", "--indent", "0"])
    text = capsys.readouterr().out
    assert text.count("\n") == 1
    schema = json.loads(text)
    refs = {r.split("/")[-1] for r in _refs(schema)}
    assert refs and refs <= set(schema["$defs"])


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)
