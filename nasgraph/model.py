"""GraphModule: one nn.Module that runs a compiled op graph in topological order.

The same class instantiates the search supernet (choice points become MixedAttention layers) and the
derived discrete model (fixed or per-head attention): there is no second model definition. A search
strategy attaches its mixer to the mixed layers (`mixed_layers()`); the model knows nothing of it.
"""
from __future__ import annotations

import networkx as nx
import torch
from torch import nn

from nasgraph import ops
from nasgraph.errors import NasgraphError
from nasgraph.graph.expand import INPUT, module_key
from nasgraph.ops.base import ModelContext
from nasgraph.ops.mixed_attention import MixedAttention
from nasgraph.tasks.base import PAD_ID


class GraphModule(nn.Module):
    """tokens (B, T) int64 [+ mask (B, T) bool] -> logits (B, num_classes), or (B, T, vocab_size) for a
    per-position task (lm_head)."""

    def __init__(self, graph: nx.DiGraph):
        super().__init__()
        self.ctx = ModelContext(**graph.graph["ctx"])
        self.order = [n for n in nx.topological_sort(graph) if n != INPUT]
        self.inputs = {n: list(graph.nodes[n]["inputs"]) for n in self.order}
        self.output = graph.graph["output"]
        self.nodes = nn.ModuleDict()
        for n in self.order:
            node = graph.nodes[n]
            cfg = ops.parse_options(node["op"], node["params"])
            self.nodes[module_key(n)] = ops.get(node["op"])(cfg, self.ctx)
        for n, layer in self.mixed_layers().items():
            layer.node = n
        self._tie_heads(graph)
        # free each intermediate value after its last use (peak memory of long graphs)
        last_use: dict[str, str] = {}
        for n in self.order:
            for i in self.inputs[n]:
                last_use[i] = n
        self.release = {n: [i for i in self.inputs[n] if last_use[i] == n and i != self.output] for n in self.order}

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None, *, padded: bool = True) -> torch.Tensor:
        """padded=False: no padding mask at all (every position is a real token; for unpadded batches,
        e.g. the unpadded ONNX export, where attention can take fused mask-free kernels)."""
        if mask is None and padded:
            mask = tokens != PAD_ID                                       # (B, T) bool
        values: dict[str, torch.Tensor] = {INPUT: tokens}
        for n in self.order:
            values[n] = self.nodes[module_key(n)](*[values[i] for i in self.inputs[n]], mask=mask)
            for i in self.release[n]:
                del values[i]
        return values[self.output]                                        # (B, C) or (B, T, V)

    def _tie_heads(self, graph: nx.DiGraph) -> None:
        """lm_head with `tie: true` shares the weight of the one embedding of the token input."""
        tied = [n for n in self.order if graph.nodes[n]["op"] == "lm_head" and graph.nodes[n]["params"].get("tie")]
        if not tied:
            return
        embeds = [n for n in self.order if graph.nodes[n]["op"] == "embedding"]
        if len(embeds) != 1:
            raise NasgraphError(f"lm_head '{tied[0]}' has tie: true, but the graph has {len(embeds)} embeddings "
                                f"({', '.join(embeds) or 'none'}); tying needs exactly one")
        for n in tied:
            self.nodes[module_key(n)].tie_to(self.nodes[module_key(embeds[0])].token)

    def mixed_layers(self) -> dict[str, nn.Module]:
        """Choice points: node name -> MixedAttention."""
        return {n: m.inner for n in self.order
                if isinstance(m := self.nodes[module_key(n)], ops.get("attention")) and isinstance(m.inner, MixedAttention)}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [layer.alpha for layer in self.mixed_layers().values()]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]
