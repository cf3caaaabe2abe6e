"""Graph artifacts: node-link JSON, Graphviz DOT, and a PNG when the `dot` program is present."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import networkx as nx

OP_COLORS = {"attention": "#f4b183", "ffn": "#a9d18e", "norm": "#dae3f3", "add": "#ffffff",
             "embedding": "#ffe699", "pool": "#c9c9c9", "head": "#c9c9c9", "input": "#ffffff"}


def _jsonable(v):
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def to_node_link(g: nx.DiGraph) -> dict:
    """networkx node-link data with JSON-able attributes."""
    return _jsonable(nx.node_link_data(g, edges="edges"))


def _quote(s: str) -> str:
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: nx.DiGraph) -> str:
    """Graphviz DOT text: one box per node with its op, shape and (choice points) candidates."""
    lines = [f"digraph {_quote(g.name or 'nasgraph')} {{", "  rankdir=TB;",
             '  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=10];']
    for n, d in g.nodes(data=True):
        label = f"{n}\n{d['op']} {tuple(d.get('shape', ()))}"
        if d["op"] == "attention" and d.get("choice"):
            label += f"\n{d['granularity']}: " + " | ".join(d["candidates"])
        elif d["op"] == "attention":
            label += "\n" + ", ".join(d["candidates"])
        color = OP_COLORS.get(d["op"], "#ffffff")
        style = ', penwidth=2' if d.get("choice") else ""
        lines.append(f"  {_quote(n)} [label={_quote(label)}, "
                     f"fillcolor={_quote(color)}{style}];")
    for u, v in g.edges():
        lines.append(f"  {_quote(u)} -> {_quote(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_artifacts(g: nx.DiGraph, out: Path) -> list[Path]:
    """graph.json, graph.dot and (when Graphviz is installed) graph.png in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "graph.json", out / "graph.dot"]
    written[0].write_text(json.dumps(to_node_link(g), indent=1))
    written[1].write_text(to_dot(g))
    if shutil.which("dot"):
        png = out / "graph.png"
        subprocess.run(["dot", "-Tpng", str(written[1]), "-o", str(png)], check=True, capture_output=True)
        written.append(png)
    return written
