"""Spec -> graph -> module: the three model forms, shapes, choice points, summaries, artifacts."""
from __future__ import annotations

import json

import networkx as nx
import pytest
import torch

from nasgraph.graph import compile_spec
from nasgraph.graph.io import to_dot, to_node_link
from nasgraph.graph.summary import summarize
from nasgraph.model import GraphModule
from nasgraph.spec import load_spec

COMPACT = """
name: compact
task: {kind: tiny, max_len: 12}
model:
  d_model: 16
  n_heads: 2
  graph:
    - embedding: {}
    - repeat: 3
      body:
        - residual: [{norm: {}}, {attention: [softmax, linear]}]
        - residual: [{norm: rms}, {ffn: {activation: swiglu}}]
    - norm: {}
    - pool: mean
    - head: {}
"""

EXPLICIT = """
name: explicit
task: {kind: tiny, max_len: 12}
model:
  d_model: 16
  n_heads: 2
  nodes:
    emb: {op: embedding, inputs: [tokens]}
    a1: {op: attention, inputs: [emb], candidates: [softmax]}
    a2: {op: attention, inputs: [emb], candidates: [linear]}
    both: {op: add, inputs: [emb, a1, a2]}
    pool: {op: pool, inputs: [both], type: cls}
    head: {op: head, inputs: [pool]}
"""


def test_standard_form_graph(tiny_spec):
    g = compile_spec(load_spec(tiny_spec()))
    assert nx.is_directed_acyclic_graph(g)
    assert g.graph["output"] == "head"
    att = g.nodes["L0.attention"]
    assert att["choice"] and att["granularity"] == "layer"
    assert att["candidates"] == ["softmax", "linear", "local(window=4)"]
    assert att["shape"] == ("B", "T", 16) and g.nodes["pool"]["shape"] == ("B", 16)
    assert g.nodes["head"]["shape"] == ("B", 2)
    assert [g.nodes[n]["op"] for n in ("L0.norm1", "L0.add1", "L0.ffn", "final_norm")] == ["norm", "add", "ffn", "norm"]


def test_compact_form_repeats_and_residuals(write_spec):
    g = compile_spec(load_spec(write_spec(COMPACT)))
    ops = [d["op"] for _, d in g.nodes(data=True)]
    assert ops.count("attention") == 3 and ops.count("add") == 6 and ops.count("norm") == 7
    model = GraphModule(g)
    tokens = torch.randint(2, 8, (3, 10))
    assert model(tokens).shape == (3, 2)


def test_explicit_form_runs_a_non_chain_graph(write_spec):
    g = compile_spec(load_spec(write_spec(EXPLICIT)))
    assert sorted(g.predecessors("both")) == ["a1", "a2", "emb"]
    assert not any(d.get("choice") for _, d in g.nodes(data=True))
    out = GraphModule(g)(torch.randint(2, 8, (2, 7)))
    assert out.shape == (2, 2) and torch.isfinite(out).all()


def test_padding_does_not_change_real_outputs(tiny_spec):
    torch.manual_seed(0)
    model = GraphModule(compile_spec(load_spec(tiny_spec()))).eval()
    tokens = torch.randint(2, 8, (2, 9))
    padded = torch.cat([tokens, torch.zeros(2, 3, dtype=torch.long)], dim=1)   # PAD_ID = 0
    torch.testing.assert_close(model(tokens), model(padded), atol=1e-5, rtol=1e-5)


def test_space_size_and_flop_extremes(tiny_spec):
    layer = summarize(compile_spec(load_spec(tiny_spec("layer"))))
    assert layer.space_size == 3 ** 2
    per_layer = [cp.flops for cp in layer.choice_points]
    assert layer.flops_max == layer.flops_shared + sum(max(f.values()) for f in per_layer)
    assert layer.flops_min == layer.flops_shared + sum(min(f.values()) for f in per_layer)
    head = summarize(compile_spec(load_spec(tiny_spec("head"))))
    assert head.space_size == (3 ** 2) ** 2                      # 3 candidates per head, 2 heads, 2 layers
    cp = head.choice_points[0]
    assert cp.extreme(max) == 2 * max(cp.head_flops.values()) + cp.out_proj_flops


def test_summary_json_has_the_documented_keys(tiny_spec):
    data = summarize(compile_spec(load_spec(tiny_spec()))).to_json()
    assert {"nodes", "edges", "params", "flops", "space_size"} <= set(data)
    assert set(data["flops"]["per_candidate"]) == {"softmax", "linear", "local(window=4)"}
    assert all(v > 0 for v in data["flops"]["per_candidate"].values())


def test_artifacts_are_valid_json_and_dot(tiny_spec):
    g = compile_spec(load_spec(tiny_spec()))
    data = json.loads(json.dumps(to_node_link(g)))
    assert len(data["nodes"]) == g.number_of_nodes() and len(data["edges"]) == g.number_of_edges()
    dot = to_dot(g)
    assert dot.startswith('digraph "tiny"') and dot.count("->") == g.number_of_edges()
    assert "layer: softmax | linear | local(window=4)" in dot


@pytest.mark.parametrize("granularity", ["layer", "head"])
def test_supernet_has_one_alpha_row_per_group(tiny_spec, granularity):
    model = GraphModule(compile_spec(load_spec(tiny_spec(granularity))))
    alphas = model.arch_parameters()
    assert len(alphas) == 2 and alphas[0].shape == ((2 if granularity == "head" else 1), 3)
    assert not {id(p) for p in alphas} & {id(p) for p in model.weight_parameters()}
