"""Elastic dimensions (mixFormer): spec checks, the space count, weight slicing, sandwich training, the
latency predictor, evolution under a budget, and derived specs of the Pareto front."""
from __future__ import annotations

import json
import random

import networkx as nx
import pytest
import torch

from nasgraph.cli import main
from nasgraph.elastic import ElasticSupernet
from nasgraph.graph import compile_spec
from nasgraph.graph.elastic import compile_subnet, summarize_elastic
from nasgraph.graph.subnet import SubNet, largest, sample, smallest, space_size
from nasgraph.graph.summary import summarize
from nasgraph.model import GraphModule
from nasgraph.search.derive import choice_mixing
from nasgraph.search.elastic_search import Search, decode, encode, pareto_front
from nasgraph.search.latency_model import RIDGES, LatencyModel, cross_validated_error
from nasgraph.search.sandwich import sandwich, sandwich_step
from nasgraph.spec import load_spec

ELASTIC = """
name: elastic
task: {kind: tiny, max_len: 12, n_train: 256, n_val: 64, n_test: 64}
model:
  d_model: {choices: [16, 24, 32]}
  n_heads: {choices: [2, 4]}
  n_layers: {choices: [1, 2]}
  ffn: {mult: {choices: [1, 2]}%(ffn)s}
  attention: [softmax, linear]
search: {strategy: evolution, seeds: [0], steps: 4, score_batches: 1, population: 5, generations: 2, parents: 2,
         latency_samples: 0%(search)s}
train: {steps: 4, batch_size: 16, eval_every: 2, checkpoint_every: 2, lr: 3.0e-3}
"""


@pytest.fixture
def elastic_spec(write_spec):
    def make(ffn: str = "", search: str = "", name: str = "elastic.yaml"):
        return write_spec(ELASTIC % {"ffn": ffn, "search": search}, name)
    return make


@pytest.fixture
def space(elastic_spec):
    doc = load_spec(elastic_spec())
    graph = compile_spec(doc)
    return doc, graph


BAD = [
    ("model.n_heads={choices: [2, 5]}", "model.n_heads", "d_model 16 is not divisible by n_heads 5"),
    ("model.d_model={choices: [16, 16]}", "model.d_model", "repeat a value"),
    ("model.d_model={choice: [16]}", "model.d_model", "unknown option 'choice' (did you mean 'choices'?)"),
    ("model.ffn.mult={choices: [0, 2]}", "model.ffn.mult", "greater than 0"),
    ("model.attention={granularity: head, candidates: [softmax, linear]}", "model.attention",
     "per-head attention choices do not combine with elastic dimensions"),
    ("model.ffn.hidden=8", "model.ffn.hidden", "hides the elastic 'mult' choices"),
    ("model.ffn.mult={choices: [1, 1e308]}", "model.ffn", "not a finite number of hidden units"),
    ("search.seeds=[0, 1]", "search.seeds", "give one seed"),
    ("search.budget={latency_ms: 1}", "search.latency_samples", "a latency budget needs a latency predictor"),
]


@pytest.mark.parametrize("override,key,message", BAD)
def test_elastic_spec_errors_are_one_located_line(elastic_spec, capsys, override, key, message):
    assert main(["compile", str(elastic_spec()), "--set", override]) == 2
    err = capsys.readouterr().err
    assert f" {key}: " in err and message in err and "Traceback" not in err


def test_elastic_dims_written_in_a_file_are_located_at_their_line(write_spec, capsys):
    text = ELASTIC % {"ffn": "", "search": ""}
    spec = write_spec(text.replace("n_heads: {choices: [2, 4]}", "n_heads: {choices: [2, 3]}"), "bad.yaml")
    assert main(["compile", str(spec)]) == 2
    assert "bad.yaml:6:" in capsys.readouterr().err


def test_elastic_dims_need_the_standard_encoder(write_spec, capsys):
    spec = write_spec("""
        name: g
        task: {kind: tiny, max_len: 12, n_train: 64, n_val: 32, n_test: 32}
        model:
          d_model: {choices: [16, 32]}
          n_heads: 2
          graph: [{embedding: {}}, {attention: softmax}, {pool: cls}, {head: {}}]
        """)
    assert main(["compile", str(spec)]) == 2
    assert "need the standard encoder" in capsys.readouterr().err


def test_compile_counts_the_space_and_its_two_ends(space, capsys, elastic_spec):
    doc, graph = space
    info = summarize_elastic(doc, graph, summarize(graph))
    # 3 widths x 2 head counts x (1 layer: 2 widths x 2 types + 2 layers: (2 x 2)^2)
    assert info["space_size"] == space_size(graph.graph["elastic"]) == 3 * 2 * (4 + 16)
    assert info["smallest"]["params"] < info["largest"]["params"]
    assert info["smallest"]["flops"] < info["largest"]["flops"]
    assert main(["compile", str(elastic_spec())]) == 0
    out = capsys.readouterr().out
    assert "elastic search space: 120 sub-networks" in out and "smallest sub-network" in out


def test_supernet_is_the_largest_sub_network(space):
    doc, graph = space
    assert graph.graph["ctx"]["d_model"] == 32 and graph.graph["ctx"]["n_heads"] == 4
    assert sum(1 for n in graph if n.endswith(".ffn")) == 2


def test_sliced_sub_network_equals_the_standalone_derived_model(space):
    doc, graph = space
    elastic = ElasticSupernet(GraphModule(graph), graph.graph["elastic"],
                              lambda s: compile_subnet(doc, graph, s)).eval()
    tokens = torch.randint(2, 8, (3, 12))                                                  # (B, T)
    rng = random.Random(0)
    for sub in [smallest(elastic.space), *(sample(elastic.space, rng) for _ in range(4))]:
        standalone = GraphModule(compile_subnet(doc, graph, sub)).eval()
        standalone.load_state_dict({k: v.detach() for k, v in elastic.sliced(sub).items()})
        torch.testing.assert_close(elastic(sub, tokens), standalone(tokens), rtol=0, atol=0)
    # the largest sub-network is the supernet itself, its attention picked one-hot
    big = largest(elastic.space, (1, 0))
    with choice_mixing(elastic.supernet, {"L0.attention": [1], "L1.attention": [0]}):
        torch.testing.assert_close(elastic(big, tokens), elastic.supernet(tokens))


def test_sandwich_step_trains_the_shared_weights(space):
    doc, graph = space
    elastic = ElasticSupernet(GraphModule(graph), graph.graph["elastic"], lambda s: compile_subnet(doc, graph, s))
    opt = torch.optim.AdamW(elastic.supernet.weight_parameters(), lr=1e-2)
    subs = sandwich(elastic.space, random.Random(0), n_random=2)
    assert subs[0].d_model == 32 and subs[1].d_model == 16 and len(subs) == 4
    before = elastic.supernet.nodes["embed"].token.weight.detach().clone()
    tokens, labels = torch.randint(2, 8, (4, 12)), torch.randint(0, 2, (4,))
    out = sandwich_step(elastic, opt, tokens, labels, subs, grad_clip=1.0)
    assert out["loss"] > 0 and out["kd"] >= 0
    changed = (elastic.supernet.nodes["embed"].token.weight != before)
    assert changed[:, :16].any() and changed[:, 16:].any()   # the smallest's slice and the rest both learn


def test_latency_model_recovers_a_linear_cost():
    cands = [["softmax", "linear"]] * 3
    rng = random.Random(0)
    space = {"d_model": [32, 64, 96], "n_heads": [2, 4], "n_layers": [1, 2, 3], "ffn_mult": [[1, 2, 4]] * 3,
             "attention": [2, 2, 2]}
    subs = [sample(space, rng) for _ in range(40)]
    truth = lambda s: 0.1 + 0.02 * s.n_layers + 1e-5 * sum(s.d_model ** 2 * (1 + m) for m in s.ffn_mult)  # noqa: E731
    ms = [truth(s) for s in subs]
    model = LatencyModel.fit(subs[:30], ms[:30], cands, ridge=1e-9)
    assert max(abs(model.predict(s, cands) - truth(s)) / truth(s) for s in subs[30:]) < 1e-3
    assert cross_validated_error(subs, ms, cands) < 1e-3


def test_search_respects_the_budget_and_encodes_round_trip(space):
    doc, graph = space
    sp = graph.graph["elastic"]
    params = lambda s: {"params": float(summarize(compile_subnet(doc, graph, s)).params_total)}  # noqa: E731
    limit = params(largest(sp))["params"] / 2
    for method in ("evolution", "random"):
        search = Search(sp, lambda s: float(s.d_model * s.n_layers), params, {"params": limit}, random.Random(1))
        points = search.evolve(6, 3, 2, 0.5) if method == "evolution" else search.random_search(8)
        assert len(points) >= 4 and all(p.costs["params"] <= limit for p in points)
        assert all(decode(encode(p.sub, sp), sp) == p.sub for p in points)
    front = pareto_front(points, "params")
    assert [p.costs["params"] for p in front] == sorted(p.costs["params"] for p in front)
    for a, b in zip(front, front[1:]):    # costlier points of the front score higher (equal: a tie)
        assert a.score < b.score or (a.score == b.score and a.costs["params"] == b.costs["params"])


def test_evolution_end_to_end_front_points_compile_and_train(elastic_spec, tmp_path, capsys):
    run = tmp_path / "run"
    spec = elastic_spec(search=", budget: {params: 9000}")
    assert main(["search", str(spec), "--out", str(run), "--no-progress"]) == 0
    outcome = json.loads((run / "search.json").read_text())
    assert outcome["elastic"] and outcome["front"] and all(s["params"] <= 9000 for s in outcome["scored"])
    assert "Pareto front" in (run / "report.md").read_text() and (run / "front.png").exists()
    for p in outcome["front"]:
        derived = load_spec(run / "front" / f"point{p['point']}.yaml")
        g = compile_spec(derived)
        assert "elastic" not in g.graph and not any(d.get("choice") for _, d in g.nodes(data=True))
        assert summarize(g).params_total == p["params"]
    out = tmp_path / "p0.yaml"
    assert main(["derive", str(run), "--point", "0", "-o", str(out)]) == 0
    assert main(["derive", str(run), "--point", "99", "-o", str(tmp_path / "x.yaml")]) == 2
    assert main(["train", str(out), "--out", str(tmp_path / "t"), "--no-progress"]) == 0


def test_derived_spec_compiles_to_the_sub_network_graph(space, tmp_path):
    from nasgraph.search.elastic_run import derive_subnet
    from nasgraph.spec import dump_spec

    doc, graph = space
    sub = SubNet(24, 2, (1.0, 2.0), (1, 0))
    dump_spec(derive_subnet(doc.raw, graph, sub), tmp_path / "d.yaml")
    derived = compile_spec(load_spec(tmp_path / "d.yaml"))
    direct = compile_subnet(doc, graph, sub)
    assert nx.utils.graphs_equal(derived, direct) or (
        dict(derived.nodes(data="params")) == dict(direct.nodes(data="params"))
        and derived.graph["ctx"] == direct.graph["ctx"])


def test_elastic_spaces_and_strategies_must_match(elastic_spec, tiny_spec, tmp_path, capsys):
    assert main(["search", str(elastic_spec(name="e.yaml")), "--set", "search={strategy: darts}",
                 "--out", str(tmp_path / "a"), "--no-progress"]) == 2
    assert "use strategy: evolution" in capsys.readouterr().err
    assert main(["search", str(tiny_spec(strategy="evolution")), "--out", str(tmp_path / "b"), "--no-progress"]) == 2
    assert "searches elastic dimensions" in capsys.readouterr().err
    assert main(["train", str(elastic_spec(name="f.yaml")), "--out", str(tmp_path / "c"), "--no-progress"]) == 2
    assert "elastic dimensions" in capsys.readouterr().err


def test_latency_model_picks_its_ridge_by_leave_one_out():
    cands = [["softmax", "linear"]] * 3
    rng = random.Random(1)
    space = {"d_model": [32, 64, 96], "n_heads": [2, 4], "n_layers": [1, 2, 3], "ffn_mult": [[1, 2, 4]] * 3,
             "attention": [2, 2, 2]}
    subs = list(dict.fromkeys(sample(space, rng) for _ in range(60)))[:30]
    # a per-head softmax term and a d^2 / heads linear-attention term, as the features describe
    truth = lambda s: 0.05 + 1e-3 * s.d_model + sum(  # noqa: E731
        2e-3 * s.n_heads if a == 0 else 2e-6 * s.d_model ** 2 / s.n_heads for a in s.attention)
    model = LatencyModel.fit(subs[:20], [truth(s) for s in subs[:20]], cands)
    assert model.ridge in RIDGES and model.loo_median_rel_error < 0.01
    assert max(abs(model.predict(s, cands) - truth(s)) / truth(s) for s in subs[20:]) < 0.02
    noisy = [truth(s) * (1 + 0.3 * rng.random()) for s in subs[:20]]
    assert LatencyModel.fit(subs[:20], noisy, cands).loo_median_rel_error > model.loo_median_rel_error
