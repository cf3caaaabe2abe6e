"""Node definitions -> networkx.DiGraph with validated op params and inferred shapes.

Each node carries: op, params (validated, JSON-able), inputs (ordered), shape (output), in_shapes,
path (spec location) and, for attention, candidates (labels), granularity and `choice`.
"""
from __future__ import annotations

from dataclasses import asdict

import networkx as nx

from nasgraph import ops
from nasgraph.errors import ConfigError
from nasgraph.graph.expand import INPUT, NodeDef, expand, module_key
from nasgraph.ops.attention import candidate_label, normalize_candidate
from nasgraph.ops.base import ModelContext, ShapeError
from nasgraph.graph.elastic import elastic_record
from nasgraph.spec.checks import check_attention
from nasgraph.spec.elastic import largest
from nasgraph.config import did_you_mean
from nasgraph.spec.limits import MAX_LISTED, MAX_NODES


def model_context(doc) -> ModelContext:
    """Model-wide defaults from the spec's model and task sections."""
    from nasgraph import tasks

    spec, m = doc.spec, doc.spec.model
    try:
        task = tasks.parse_task(spec.task)
        vocab, classes = tasks.vocab_size(task), tasks.num_classes(task)
        output = tasks.get(task.kind).output
    except ConfigError as err:
        raise doc.error(str(err), ("task", err.key) if err.key else ("task",)) from None
    return ModelContext(d_model=largest(m.d_model), n_heads=largest(m.n_heads),   # elastic: the largest
                        vocab_size=vocab, num_classes=classes, max_len=task.max_len, dropout=m.dropout,
                        norm=m.norm.type, position=m.position, pooling=m.pooling, ffn_mult=largest(m.ffn.mult),
                        ffn_hidden=m.ffn.hidden, ffn_activation=m.ffn.activation, task_output=output)


def _node_config(doc, nd: NodeDef, ctx: ModelContext):
    try:
        op_cls = ops.get(nd.op)
    except ConfigError as err:
        raise doc.error(str(err), nd.path) from None
    try:
        cfg = ops.parse_options(nd.op, nd.params)
    except ConfigError as err:
        base = nd.path[:-1] if nd.path and nd.path[-1] == "op" else nd.path
        raise doc.error(str(err), base + ((err.key.split(".")[0],) if err.key else ())) from None
    if nd.op == "attention":
        if (cfg.candidates is None) == (cfg.heads is None) or cfg.candidates == []:
            raise doc.error("attention needs exactly one of 'candidates' (a choice) or 'heads' (one type per head)",
                            nd.path)
        check_attention(cfg, nd.path[:-1] if nd.path[-1] == "op" else nd.path, doc.error,
                        n_heads=ctx.n_heads, max_len=ctx.max_len)
    if op_cls.n_inputs > 0 and len(nd.inputs) != op_cls.n_inputs:
        raise doc.error(f"op '{nd.op}' takes {op_cls.n_inputs} input(s), got {len(nd.inputs)}", nd.path)
    return op_cls, cfg


def build_graph(doc, nodes: list[NodeDef], ctx: ModelContext) -> nx.DiGraph:
    g = nx.DiGraph(name=doc.spec.name)
    g.graph["ctx"] = asdict(ctx)
    g.add_node(INPUT, op="input", params={}, inputs=[], shape=("B", "T"), path=("task",))
    known = {nd.name for nd in nodes} | {INPUT}
    keys: dict[str, str] = {}
    for nd in nodes:
        if nd.name in g:
            raise doc.error(f"duplicate node name '{nd.name}'", nd.path)
        other = keys.setdefault(module_key(nd.name), nd.name)
        if other != nd.name:
            raise doc.error(f"node names '{other}' and '{nd.name}' would share one module ('.' is stored as "
                            f"'__'): rename one", nd.path)
        _, cfg = _node_config(doc, nd, ctx)
        attrs = dict(op=nd.op, params=cfg.model_dump(exclude_none=True), inputs=list(nd.inputs), path=nd.path)
        if nd.op == "attention":
            cands = [candidate_label(*normalize_candidate(c)) for c in (cfg.candidates or cfg.heads)]
            attrs.update(candidates=cands, granularity=cfg.granularity, choice=cfg.is_choice)
        g.add_node(nd.name, **attrs)
    for nd in nodes:
        for i, src in enumerate(nd.inputs):
            if src not in known:
                where = nd.input_paths[i] if nd.input_paths else nd.path
                raise doc.error(f"input '{src}' is not a node{did_you_mean(src, known)}; nodes: "
                                f"{listed(sorted(known))}", where)
            g.add_edge(src, nd.name, port=i)
    return g


def check_structure(doc, g: nx.DiGraph) -> None:
    if not nx.is_directed_acyclic_graph(g):
        cycle = nx.find_cycle(g)
        names = " -> ".join([u for u, _ in cycle] + [cycle[0][0]])
        raise doc.error(f"the graph has a cycle: {names}", g.nodes[cycle[0][1]]["path"])
    sinks = [n for n in g if g.out_degree(n) == 0]
    if len(sinks) != 1:
        raise doc.error(f"the graph must have one output, found {len(sinks)}: {listed(sinks)}",
                        g.nodes[sinks[-1]]["path"])
    unused = set(g) - nx.ancestors(g, sinks[0]) - {sinks[0]}
    if unused:
        n = sorted(unused)[0]
        raise doc.error(f"node '{n}' does not lead to the output '{sinks[0]}'", g.nodes[n]["path"])
    orphans = set(g) - nx.descendants(g, INPUT) - {INPUT}
    if orphans:
        n = sorted(orphans)[0]
        raise doc.error(f"node '{n}' is not reachable from the input '{INPUT}'", g.nodes[n]["path"])
    g.graph["output"] = sinks[0]


def infer_shapes(doc, g: nx.DiGraph, ctx: ModelContext) -> None:
    for n in nx.topological_sort(g):
        node = g.nodes[n]
        if n == INPUT:
            continue
        op_cls = ops.get(node["op"])
        cfg = ops.parse_options(node["op"], node["params"])
        in_shapes = [g.nodes[i]["shape"] for i in node["inputs"]]
        try:
            node["shape"] = tuple(op_cls.infer_shape(cfg, in_shapes, ctx))
        except ShapeError as err:
            raise doc.error(f"{n}: {err}", node["path"]) from None
        node["in_shapes"] = in_shapes
    name = g.graph["output"]
    out, node = g.nodes[name]["shape"], g.nodes[name]
    if not getattr(ops.get(node["op"]), "is_head", False):
        raise doc.error(f"the output '{name}' is a{'n' if node['op'][:1] in 'aeiou' else ''} {node['op']} "
                        f"with shape {out}: end the graph with a head ("
                        f"{'lm_head' if ctx.task_output == 'token' else 'head'}), which gives the task's logits",
                        node["path"])
    if ctx.task_output == "token" and len(out) != 3:
        raise doc.error(f"the output '{name}' must be per-position (B, T, vocab_size) logits "
                        f"for task '{doc.spec.task.get('kind')}' (end in lm_head, no pool), got {out}", node["path"])
    if ctx.task_output == "class" and len(out) != 2:
        raise doc.error(f"the output '{name}' must be (B, num_classes) logits, got {out}", node["path"])
    if ctx.task_output == "class" and out[-1] != ctx.num_classes:
        raise doc.error(f"the head gives {out[-1]} classes but the task has {ctx.num_classes}: drop "
                        f"num_classes or set it to {ctx.num_classes}", node["path"])


def listed(names: list[str]) -> str:
    """At most MAX_LISTED names, then how many more."""
    more = len(names) - MAX_LISTED
    return ", ".join(map(str, names[:MAX_LISTED])) + (f", ... ({more:,} more)" if more > 0 else "")


def compile_spec(doc, force: bool | None = None) -> nx.DiGraph:
    """A loaded SpecDocument -> validated, shape-annotated networkx.DiGraph.

    Before returning, the model's parameters, activation memory and FLOPs are estimated without
    allocating it (nasgraph.graph.resources); a model past the machine or nasgraph's documented
    limits is a SpecError with the estimate, unless `force` (default: `doc.force`, from --force).
    """
    from nasgraph.graph.resources import check_resources

    force = getattr(doc, "force", False) if force is None else force
    ctx = model_context(doc)
    g = build_graph(doc, expand(doc, ctx.task_output == "token", None if force else MAX_NODES), ctx)
    check_structure(doc, g)
    infer_shapes(doc, g, ctx)
    space = elastic_record(doc.spec.model, g)     # elastic dimensions (standard encoder only)
    if space is not None:
        g.graph["elastic"] = space
    if not force:
        check_resources(doc, g)
    return g
