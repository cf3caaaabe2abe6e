"""Expand the spec's model section into node definitions (name, op, params, inputs, spec path).

Three forms, one output: the standard encoder (n_layers / layers), the compact sequential `graph:`
form (steps, `repeat`, `residual`) and the explicit `nodes:` form. The graph input is named `tokens`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasgraph.spec.elastic import largest
from nasgraph.spec.limits import MAX_NODES

INPUT = "tokens"
Path = tuple[str | int, ...]


def module_key(node: str) -> str:
    """The node's key among the model's modules (nn.ModuleDict keys cannot hold dots)."""
    return node.replace(".", "__")


@dataclass
class NodeDef:
    name: str
    op: str
    params: dict[str, Any]
    inputs: list[str]
    path: Path                         # where the node is declared in the spec, for errors
    input_paths: list[Path] = field(default_factory=list)


def shorthand(op: str, value: Any) -> dict[str, Any]:
    """Scalar/list shorthands: `pool: cls`, `norm: rms`, `attention: softmax`, `attention: [a, b]`."""
    if value is None:
        return {}
    if op == "attention" and isinstance(value, (str, list)):
        return {"candidates": value if isinstance(value, list) else [value]}
    if op == "attention" and isinstance(value, dict) and len(value) == 1 and isinstance(next(iter(value.values())), dict) \
            and next(iter(value)) not in {"candidates", "heads"}:
        return {"candidates": [value]}
    if op in ("pool", "norm") and isinstance(value, str):
        return {"type": value}
    if op == "dropout" and isinstance(value, (int, float)):
        return {"p": value}
    return value


class Expander:
    def __init__(self, doc, limit: int | None = MAX_NODES):
        self.doc, self.nodes, self._count = doc, [], {}
        self.limit, self.units = limit, 0
        self.blame: list[Path] = []        # outermost repeat (or n_layers): what to shorten

    def count(self, op: str, params: Any, path: Path) -> None:
        """Nodes plus attention candidates so far; past the limit, stop expanding (before any hang)."""
        cands = params.get("candidates") or params.get("heads") if isinstance(params, dict) else None
        self.units += 1 + (len(cands) if isinstance(cands, list) else 0)
        if self.limit is not None and self.units > self.limit:
            raise self.doc.error(f"the model expands to more than {self.limit:,} graph nodes and attention "
                                 f"candidates, nasgraph's limit (docs/spec.md, Limits; --force lifts it): "
                                 f"use fewer layers, repeats or candidates", self.blame[0] if self.blame else path)

    def add(self, op: str, params: dict, inputs: list[str], path: Path, name: str | None = None) -> str:
        self.count(op, params, path)
        if name is None:
            k = self._count.get(op, 0)
            self._count[op] = k + 1
            name = f"{op}{k}"
        self.nodes.append(NodeDef(name, op, params, inputs, path))
        return name

    # -- compact sequential form -------------------------------------------------------------------
    def steps(self, steps: Any, prev: str, path: Path) -> str:
        if not isinstance(steps, list):
            raise self.doc.error(f"expected a list of steps, got {type(steps).__name__}", path)
        for i, step in enumerate(steps):
            prev = self.step(step, prev, path + (i,))
        return prev

    def step(self, step: Any, prev: str, path: Path) -> str:
        if not isinstance(step, dict) or not step:
            raise self.doc.error("a step is a one-key mapping like {ffn: {}}, {residual: [...]} or "
                                 "{repeat: N, body: [...]}", path)
        if "repeat" in step:
            extra = set(step) - {"repeat", "body"}
            if extra:
                raise self.doc.error(f"unknown key '{sorted(extra)[0]}' in a repeat step; valid: repeat, body", path)
            n = step["repeat"]
            if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                raise self.doc.error(f"repeat must be a positive integer, got {n!r}", path + ("repeat",))
            if "body" not in step:
                raise self.doc.error("a repeat step needs a 'body' list", path)
            self.blame.append(path + ("repeat",))
            for _ in range(n):
                prev = self.steps(step["body"], prev, path + ("body",))
            self.blame.pop()
            return prev
        if len(step) != 1:
            raise self.doc.error(f"a step has exactly one op key, got {', '.join(map(str, step))}", path)
        (op, value), = step.items()
        if op == "residual":
            out = self.steps(value, prev, path + ("residual",))
            return self.add("add", {}, [prev, out], path)
        params = shorthand(op, value)
        if not isinstance(params, dict):
            raise self.doc.error(f"options of '{op}' must be a mapping, got {value!r}", path + (op,))
        return self.add(op, params, [prev], path + (op,))

    # -- explicit form -----------------------------------------------------------------------------
    def explicit(self, nodes: dict[str, dict], path: Path) -> None:
        for name, body in nodes.items():
            p = path + (name,)
            if name == INPUT:
                raise self.doc.error(f"'{INPUT}' is the graph input's reserved name", p)
            if not isinstance(body, dict) or "op" not in body:
                raise self.doc.error("a node needs an 'op' key (and 'inputs')", p)
            if not isinstance(body["op"], str):
                raise self.doc.error(f"'op' is the name of an op, got {body['op']!r:.40}", p + ("op",))
            params = {k: v for k, v in body.items() if k not in ("op", "inputs")}
            inputs = body.get("inputs", [INPUT] if body["op"] == "embedding" else None)
            if inputs is None:
                raise self.doc.error("missing 'inputs' (a list of node names, or 'tokens')", p)
            inputs = [inputs] if isinstance(inputs, str) else inputs
            self._check_inputs(inputs, p + ("inputs",))
            self.count(body["op"], params, p)
            nd = NodeDef(str(name), body["op"], params, list(inputs), p + ("op",),
                         [p + ("inputs", i) for i in range(len(inputs))])
            self.nodes.append(nd)

    def _check_inputs(self, inputs: Any, path: Path) -> None:
        if not isinstance(inputs, list) or not inputs:
            raise self.doc.error(f"'inputs' is a node name or a non-empty list of them, got {inputs!r:.40}", path)
        for i, name in enumerate(inputs):
            if not isinstance(name, str):
                raise self.doc.error(f"an input is a node name (text), got {name!r:.40}", path + (i,))

    # -- standard encoder --------------------------------------------------------------------------
    def standard(self, model, token_output: bool = False) -> None:
        layers = model.layers or _Nones(largest(model.n_layers))   # elastic depth: the largest
        self.blame.append(("model", "layers" if model.layers else "n_layers"))
        prev = self.add("embedding", {}, [INPUT], ("model",), "embed")
        pre = model.norm.placement == "pre"
        for i, layer in enumerate(layers):
            att = layer.attention if layer is not None and layer.attention is not None else model.attention
            att_path = ("model", "layers", i, "attention") if layer is not None and layer.attention else ("model", "attention")
            ffn = layer.ffn if layer is not None and layer.ffn is not None else None
            ffn_path = ("model", "layers", i, "ffn") if ffn is not None else ("model", "ffn")
            ffn_params = ffn.model_dump(exclude_none=True) if ffn is not None else {}
            if "mult" in ffn_params:
                ffn_params["mult"] = largest(ffn.mult)                     # elastic width: the largest
            att_params = att.model_dump(exclude_none=True)
            if token_output and "causal" not in att.model_fields_set:
                att_params["causal"] = True                  # a per-position task reads no future
            x = self.add("norm", {}, [prev], ("model", "norm"), f"L{i}.norm1") if pre else prev
            a = self.add("attention", att_params, [x], att_path, f"L{i}.attention")
            if model.dropout > 0:
                a = self.add("dropout", {}, [a], ("model", "dropout"), f"L{i}.drop")
            prev = self.add("add", {}, [prev, a], att_path, f"L{i}.add1")
            if not pre:
                prev = self.add("norm", {}, [prev], ("model", "norm"), f"L{i}.norm1")
            x = self.add("norm", {}, [prev], ("model", "norm"), f"L{i}.norm2") if pre else prev
            f = self.add("ffn", ffn_params, [x], ffn_path, f"L{i}.ffn")
            prev = self.add("add", {}, [prev, f], ffn_path, f"L{i}.add2")
            if not pre:
                prev = self.add("norm", {}, [prev], ("model", "norm"), f"L{i}.norm2")
        if pre:
            prev = self.add("norm", {}, [prev], ("model", "norm"), "final_norm")
        if token_output:                                     # per-position logits: no pooling
            self.add("lm_head", {}, [prev], ("model",), "head")
            return
        prev = self.add("pool", {}, [prev], ("model", "pooling"), "pool")
        self.add("head", {}, [prev], ("model",), "head")


class _Nones:
    """n_layers times None, without a list of n_layers items (the node limit stops long models)."""

    def __init__(self, n: int):
        self.n = n

    def __iter__(self):
        return (None for _ in range(self.n))


def causal_attention(doc, nodes: list[NodeDef]) -> None:
    """Per-position tasks: every attention reads no future position (causal unless set to false).

    An explicit `causal: false` is an error there: the model would see the tokens it must predict.
    """
    for nd in nodes:
        if nd.op != "attention" or not isinstance(nd.params, dict):
            continue
        if nd.params.get("causal", True) is False:
            base = nd.path[:-1] if nd.path and nd.path[-1] == "op" else nd.path
            raise doc.error("this task predicts every next token: its attention must be causal "
                            "(drop 'causal: false')", base + ("causal",))
        nd.params["causal"] = True


def expand(doc, token_output: bool = False, limit: int | None = MAX_NODES) -> list[NodeDef]:
    """Node definitions of the model section, in declaration order; SpecError past `limit` units.

    `token_output` (a per-position task such as `lm`): the standard encoder ends in an `lm_head`
    without pooling, and every attention of every form is causal.
    """
    model, ex = doc.spec.model, Expander(doc, limit)
    if model.graph is not None:
        ex.steps(model.graph, INPUT, ("model", "graph"))
    elif model.nodes is not None:
        ex.explicit(model.nodes, ("model", "nodes"))
    else:
        ex.standard(model, token_output)
    if token_output:
        causal_attention(doc, ex.nodes)
    return ex.nodes
